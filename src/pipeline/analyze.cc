#include "pipeline/analyze.h"

#include <exception>
#include <vector>

#include "embed/embedder.h"
#include "io/decode.h"
#include "io/formats.h"
#include "quality/stats.h"

namespace vislint::pipeline {

namespace {

// Everything after decoding: size, pixel hash, stats, perceptual hashes, model input.
void analyze_decoded(const AnalyzeOptions& options, const io::DecodedImage& image,
                     store::ImageRecord* r, cv::Mat* model_input) {
    r->width = image.width;
    r->height = image.height;
    r->channels = image.channels;
    r->bit_depth = image.bit_depth;
    r->orientation = image.orientation;
    r->pixel_hash = hash::pixel_hash(image.pixels);
    cv::Mat work = io::working_image(image, options.working_side);
    const cv::Mat gray = quality::to_gray(work);
    r->stats = quality::compute_stats(work, gray);
    const hash::PerceptualHashes ph = hash::perceptual_hashes(gray);
    r->phash = ph.phash;
    r->dhash = ph.dhash;
    r->small_thumb = hash::small_thumb(gray);
    if (options.variant_hashes) {
        r->variants = hash::variant_hashes(gray);
        r->has_variants = true;
    }
    if (model_input && options.model_size > 0) *model_input = embed::model_input(work, options.model_size);
    r->has_pixels = true;
}

template <typename Body>
void guard(store::ImageRecord* r, Body&& body) {
    try {
        body();
    } catch (const std::exception& e) {
        // A decoder library threw on hostile data (or memory ran out for this one image): the
        // image is reported, the run goes on.
        r->status = ImageStatus::make(StatusCode::kCorrupt, std::string("analysis failed: ") + e.what());
        r->has_pixels = false;
    }
}

} // namespace

void analyze_bytes(const AnalyzeOptions& options, const uint8_t* data, size_t size,
                   store::ImageRecord* r, cv::Mat* model_input) {
    r->ext_format = io::format_name(io::format_from_extension(r->path));
    r->file_hash = hash::content_hash(data, size);
    guard(r, [&] {
        io::DecodedImage image;
        io::DecodeOptions dopt;
        dopt.max_pixels = options.max_pixels;
        dopt.max_bytes = options.max_bytes;
        dopt.working_side = options.working_side;
        r->status = io::decode_image(data, size, dopt, &image);
        r->format = io::format_name(image.format);
        if (r->status.ok()) analyze_decoded(options, image, r, model_input);
    });
}

void analyze_boxes(const AnalyzeOptions& options, store::ImageRecord* records, size_t n,
                   std::vector<cv::Mat>* model_inputs) {
    if (model_inputs) model_inputs->assign(n, cv::Mat());
    if (n == 0) return;
    const std::string& source = records[0].source;
    for (size_t i = 0; i < n; ++i) {
        records[i].ext_format = io::format_name(io::format_from_extension(source));
        records[i].format = "unknown";
    }
    std::vector<uint8_t> bytes;
    ImageStatus status;
    io::DecodedImage image;
    if (io::read_file(source, options.max_bytes, &bytes, &status)) {
        try {
            io::DecodeOptions dopt;
            dopt.max_pixels = options.max_pixels;
            dopt.max_bytes = options.max_bytes;
            dopt.working_side = 1 << 30; // crops need full resolution
            status = io::decode_image(bytes.data(), bytes.size(), dopt, &image);
        } catch (const std::exception& e) {
            status = ImageStatus::make(StatusCode::kCorrupt, std::string("analysis failed: ") + e.what());
        }
    }
    for (size_t i = 0; i < n; ++i) {
        store::ImageRecord* r = &records[i];
        r->format = io::format_name(image.format);
        r->status = status;
        if (!status.ok()) {
            r->file_hash = hash::content_hash(bytes.data(), bytes.size());
            continue;
        }
        guard(r, [&] {
            io::DecodedImage crop;
            r->status = io::crop_box(image, r->box, options.box_margin, &crop);
            if (!r->status.ok()) return;
            analyze_decoded(options, crop, r, model_inputs ? &(*model_inputs)[i] : nullptr);
            r->file_hash = r->pixel_hash;
        });
    }
}

void analyze_file(const AnalyzeOptions& options, store::ImageRecord* r, cv::Mat* model_input) {
    r->ext_format = io::format_name(io::format_from_extension(r->path));
    r->format = "unknown";
    std::vector<uint8_t> bytes;
    if (io::read_file(r->path, options.max_bytes, &bytes, &r->status))
        analyze_bytes(options, bytes.data(), bytes.size(), r, model_input);
}

} // namespace vislint::pipeline
