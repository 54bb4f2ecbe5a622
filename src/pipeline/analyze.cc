#include "pipeline/analyze.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "embed/embedder.h"
#include "io/decode.h"
#include "io/formats.h"
#include "quality/stats.h"

namespace vislint::pipeline {

void analyze_bytes(const AnalyzeOptions& options, const uint8_t* data, size_t size,
                   store::ImageRecord* r, cv::Mat* model_input) {
    r->ext_format = io::format_name(io::format_from_extension(r->path));
    r->file_hash = hash::content_hash(data, size);
    io::DecodedImage image;
    try {
        io::DecodeOptions dopt;
        dopt.max_pixels = options.max_pixels;
        dopt.working_side = options.working_side;
        r->status = io::decode_image(data, size, dopt, &image);
        r->format = io::format_name(image.format);
        if (!r->status.ok()) return;
        r->width = image.width;
        r->height = image.height;
        r->channels = image.channels;
        r->bit_depth = image.bit_depth;
        r->orientation = image.orientation;
        r->pixel_hash = hash::pixel_hash(image.pixels);
        cv::Mat work = io::working_image(image, options.working_side);
        r->stats = quality::compute_stats(work);
        cv::Mat gray = quality::to_gray(work);
        r->phash = hash::phash(gray);
        r->dhash = hash::dhash(gray);
        if (model_input && options.model_size > 0) *model_input = embed::model_input(work, options.model_size);
        r->has_pixels = true;
    } catch (const std::exception& e) {
        // A decoder library threw on hostile data (or memory ran out for this one image): the
        // image is reported, the run goes on.
        r->status = ImageStatus::make(StatusCode::kCorrupt, std::string("analysis failed: ") + e.what());
        r->has_pixels = false;
    }
}

void analyze_file(const AnalyzeOptions& options, store::ImageRecord* r, cv::Mat* model_input) {
    r->ext_format = io::format_name(io::format_from_extension(r->path));
    r->format = "unknown";
    FILE* f = std::fopen(r->path.c_str(), "rb");
    if (!f) {
        r->status = ImageStatus::make(StatusCode::kUnreadable, std::strerror(errno));
        return;
    }
    std::vector<uint8_t> bytes;
    if (r->file_size > 0) bytes.reserve(size_t(r->file_size));
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
    bool error = std::ferror(f);
    int err = errno;
    std::fclose(f);
    if (error) {
        r->status = ImageStatus::make(StatusCode::kUnreadable, std::string("read error: ") + std::strerror(err));
        return;
    }
    analyze_bytes(options, bytes.data(), bytes.size(), r, model_input);
}

} // namespace vislint::pipeline
