// Per-image analysis: read the file, hash it, decode it, measure it. Pure function of the file's
// bytes and the options; safe to call from many threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "store/image_record.h"

namespace vislint::pipeline {

struct AnalyzeOptions {
    int64_t max_pixels = 100'000'000;
    int64_t max_bytes = int64_t(512) << 20; // per-image memory limit (io::DecodeOptions::max_bytes)
    int working_side = 256; // longer side of the working image that stats and hashes see
    int model_size = 0;     // > 0: also produce the model input (model_size^2 BGR, squashed)
    // The hashes of transformed views (hash::variant_hashes, ~0.3 ms an image): only the kNN
    // candidates of runs with embeddings use them.
    bool variant_hashes = false;
    double box_margin = 0.1; // object crops: margin on each side, as a fraction of the box side
};

// Never throws for bad input: failures end up in record->status. `record` must have id, path,
// file_size and mtime_ns set (file_size -1 = stat failed).
// `model_input` (optional) receives the embedding model's input when options.model_size > 0
// and the image decoded.
void analyze_file(const AnalyzeOptions& options, store::ImageRecord* record,
                  cv::Mat* model_input = nullptr);

// Object crops of one file: records[0..n) share `source` and each has a `box`. The file is read
// and decoded once (at full resolution); each crop (box plus margin, clipped to the image) is
// analysed as an image of its own. Its file_hash is the crop's pixel hash, so two boxes of one
// file are never "identical files". `model_inputs` (optional) receives n inputs (empty Mats for
// failures).
void analyze_boxes(const AnalyzeOptions& options, store::ImageRecord* records, size_t n,
                   std::vector<cv::Mat>* model_inputs = nullptr);

// Same as analyze_file, from bytes already in memory (tests).
void analyze_bytes(const AnalyzeOptions& options, const uint8_t* data, size_t size,
                   store::ImageRecord* record, cv::Mat* model_input = nullptr);

} // namespace vislint::pipeline
