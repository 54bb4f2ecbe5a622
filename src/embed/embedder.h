// Image embeddings: the only place that uses cv::dnn.
//
// An Embedder runs one ONNX model through OpenCV DNN on batches of square RGB inputs and returns
// L2-normalised float vectors (n x dim, row-major). One Embedder per thread: cv::dnn::Net is not
// safe for concurrent forward() calls; build one per inference worker.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "vislint/options.h"

namespace vislint::embed {

// A fully resolved model: what file, how to feed it, which output is the embedding.
struct ModelSpec {
    std::string name;        // "efficientnet_lite0" or the ONNX file's stem
    std::string path;        // .onnx file
    std::string id;          // name + xxh3 of the file + preprocessing: changes => features change
    int input_size = 224;
    std::array<double, 3> mean{{123.675, 116.28, 103.53}}; // RGB, pixel units
    std::array<double, 3> std{{58.395, 57.12, 57.375}};
    std::string output;      // empty = the net's default (last) output
    std::string logits;      // optional classification output (default model: "logits")
};

// Input side of the default model (EfficientNet-Lite0): chosen by the measurement in
// docs/benchmarks.md (quality on planted near duplicates vs speed).
constexpr int kDefaultInputSize = 160;

// The cache dir: $VISLINT_CACHE, else $HOME/.cache/vislint.
std::string cache_dir();

// Throws vislint::Error naming the option when --model-mean / --model-std (1 or 3 finite
// numbers, std > 0) or --model-size (0 or 16..1024) is unusable. Needs no model file.
void check_model_options(const ModelOptions& options);

// Resolves ModelOptions into a spec. "default" reads <cache>/efficientnet_lite0/model.json.
// Throws vislint::Error that says how to fix it when the model is missing or unusable.
// REQUIRES: options.model != "none".
ModelSpec resolve_model(const ModelOptions& options);

// The model input for one image: the working image (8-bit BGR) resized to size x size
// (squashed, not cropped: the whole picture counts), INTER_AREA when shrinking.
cv::Mat model_input(const cv::Mat& bgr, int size);

class Embedder {
public:
    // Loads the network and checks it once on two test pictures. Throws vislint::Error naming
    // the file when OpenCV cannot import it, when its declared input is not N x 3 x H x W (one
    // input; batch 1 or dynamic; H = W = input_size when fixed), when an output named by the
    // spec does not exist (the message lists those that do), or when the embedding output is not
    // one vector of at least 2 values per image, or is all zeros or not finite for a test picture.
    explicit Embedder(const ModelSpec& spec);
    ~Embedder();
    Embedder(const Embedder&) = delete;
    Embedder& operator=(const Embedder&) = delete;

    int dim() const { return dim_; }
    const ModelSpec& spec() const { return spec_; }

    // inputs: size x size 8-bit BGR images (model_input()). out: inputs.size() x dim floats,
    // each row L2-normalised, or all zeros when the model's output for that image was all
    // zeros or not finite (NaN / infinity): such a row is no embedding and must be left out.
    // logits (optional): inputs.size() x n_classes raw scores. Throws vislint::Error when the
    // network fails.
    void embed(const std::vector<cv::Mat>& inputs, std::vector<float>* out,
               std::vector<float>* logits = nullptr);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    ModelSpec spec_;
    int dim_ = 0;
};

} // namespace vislint::embed
