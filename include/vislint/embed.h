// Embedding single images with the same code path a scan uses (decode, resize, normalise, infer).
#pragma once

#include <string>
#include <vector>

#include "vislint/options.h"

namespace vislint {

struct Embedding {
    std::vector<float> features; // L2-normalised embedding (dim values)
    std::vector<float> logits;   // raw class scores when the model has a classifier output
    std::string model_id;        // name, file digest and preprocessing of the model used
    int input_size = 0;
};

// Throws vislint::Error for a missing model or an image that cannot be decoded.
Embedding embed_image(const std::string& path, const ModelOptions& model);

} // namespace vislint
