// libFuzzer target over the per-image path a scan runs on every file: decode (every format),
// working image, stats, content / pixel / perceptual hashes and the model input.
// Built by -DVISLINT_BUILD_FUZZ=ON with clang (see `make fuzz`); not part of `make test`.
//
// Besides what ASan / UBSan catch, it aborts (so libFuzzer saves the input) when:
// - analyze_bytes lets an exception out (it promises to turn every failure into a status);
// - a failed image has no message, or a decoded one breaks the record's invariants;
// - results depend on decoder state. Decoders keep per-thread state (a reused TurboJPEG handle),
//   so two checks: after each input a known-good JPEG and PNG, made once at start-up, must still
//   decode exactly as they did first (a hostile file that leaves the state broken turns later
//   good files into false `corrupt` rows); and each input must decode the same on this thread's
//   used decoder as on a fresh thread's (a file must not borrow tables or state from the files
//   before it).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "hash/hashes.h"
#include "io/decode.h"
#include "io/formats.h"
#include "pipeline/analyze.h"
#include "store/image_record.h"

namespace {

using vislint::pipeline::AnalyzeOptions;
using vislint::status_code_name;
using vislint::store::ImageRecord;

constexpr int kModelSize = 64;

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "decode_fuzz: FINDING: %s\n", what.c_str());
    std::abort();
}

AnalyzeOptions options() {
    AnalyzeOptions o;
    o.model_size = kModelSize;
    // Small enough that a header claiming a huge image is refused (too_large) instead of making
    // the fuzzer allocate gigabytes; real pixel limits are exercised by the unit tests.
    o.max_pixels = 16'000'000;
    return o;
}

ImageRecord analyze(const uint8_t* data, size_t size, cv::Mat* model_input) {
    ImageRecord r;
    r.id = 1;
    r.path = "fuzz_input"; // no extension: the format comes from the content alone
    r.file_size = static_cast<int64_t>(size);
    try {
        vislint::pipeline::analyze_bytes(options(), data, size, &r, model_input);
    } catch (const std::exception& e) {
        finding(std::string("analyze_bytes threw: ") + e.what());
    } catch (...) {
        finding("analyze_bytes threw a non-std exception");
    }
    return r;
}

void check_record(const ImageRecord& r, const cv::Mat& model_input) {
    if (!r.status.ok()) {
        if (r.status.message.empty()) finding("failed status without a message");
        if (r.has_pixels) finding("failed status but has_pixels");
        return;
    }
    if (!r.has_pixels) finding("ok status but no pixels");
    if (r.width <= 0 || r.height <= 0) finding("ok status with a non-positive size");
    if (int64_t(r.width) * r.height > options().max_pixels) finding("image above max_pixels decoded");
    if (r.channels < 1 || r.channels > 4) finding("channels outside 1..4");
    if (r.format == "unknown") finding("ok status with format unknown");
    if (model_input.rows != kModelSize || model_input.cols != kModelSize || model_input.type() != CV_8UC3)
        finding("model input is not " + std::to_string(kModelSize) + "x" + std::to_string(kModelSize) + " BGR");
}

struct Canary {
    const char* name;
    std::vector<uint8_t> bytes;
    ImageRecord first;
};

std::vector<Canary> make_canaries() {
    cv::Mat img(40, 56, CV_8UC3);
    cv::randu(img, 0, 255);
    std::vector<Canary> out;
    for (const char* ext : {".jpg", ".png"}) {
        Canary c{ext, {}, {}};
        if (!cv::imencode(ext, img, c.bytes)) finding(std::string("cannot encode the canary ") + ext);
        cv::Mat m;
        c.first = analyze(c.bytes.data(), c.bytes.size(), &m);
        if (!c.first.status.ok()) finding(std::string("canary ") + ext + " does not decode: " + c.first.status.to_string());
        out.push_back(std::move(c));
    }
    return out;
}

void check_canaries() {
    static std::vector<Canary> canaries = make_canaries();
    for (const Canary& c : canaries) {
        cv::Mat m;
        ImageRecord r = analyze(c.bytes.data(), c.bytes.size(), &m);
        if (r.status.code != c.first.status.code || !(r.pixel_hash == c.first.pixel_hash) ||
            r.phash != c.first.phash)
            finding(std::string("state leak: after this input a valid ") + c.name + " decodes as " +
                    status_code_name(r.status.code) + ", was " + status_code_name(c.first.status.code) +
                    " ('" + r.status.message + "')");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check_canaries(); // builds them before the first input, so they see a fresh decoder
    cv::Mat model_input;
    ImageRecord r = analyze(data, size, &model_input);
    check_record(r, model_input);

    // Only the JPEG decoder keeps state per thread (its TurboJPEG handle), and a new thread per
    // input costs more than the input itself (OpenCV sets up per-thread state), so only JPEGs
    // get decoded again on a fresh thread.
    if (vislint::io::sniff_format(data, size) == vislint::io::Format::kJpeg) {
        vislint::ImageStatus fresh;
        vislint::hash::Hash128 fresh_hash;
        std::thread([&] {
            vislint::io::DecodeOptions dopt;
            dopt.max_pixels = options().max_pixels;
            dopt.working_side = options().working_side;
            vislint::io::DecodedImage image;
            try {
                fresh = vislint::io::decode_image(data, size, dopt, &image);
            } catch (const std::exception& e) {
                fresh = vislint::ImageStatus::make(vislint::StatusCode::kCorrupt, e.what());
            }
            if (fresh.ok()) fresh_hash = vislint::hash::pixel_hash(image.pixels);
        }).join();
        if (fresh.code != r.status.code || (fresh.ok() && !(fresh_hash == r.pixel_hash)))
            finding(std::string("decoder state: this JPEG decodes as ") + status_code_name(r.status.code) +
                    " on a used decoder, as " + status_code_name(fresh.code) + " on a fresh one ('" +
                    r.status.message + "' / '" + fresh.message + "')");
    }

    check_canaries();
    return 0;
}
