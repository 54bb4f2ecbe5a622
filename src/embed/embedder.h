// Image embeddings: the only place that knows the inference runtime (OpenVINO Runtime).
//
// An Embedder runs one ONNX (or OpenVINO IR) model through OpenVINO on batches of square RGB
// inputs and returns L2-normalised float vectors (n x dim, row-major). One Embedder serves many
// threads: it holds one compiled model and `streams` infer requests, and embed() may be called
// from up to that many threads at once (further callers wait for a free request).
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
    std::string path;        // .onnx file, or an OpenVINO IR .xml (its .bin next to it)
    std::string id;          // name + xxh3 of the file + preprocessing: changes => features change
    int input_size = 224;
    std::array<double, 3> mean{{123.675, 116.28, 103.53}}; // RGB, pixel units
    std::array<double, 3> std{{58.395, 57.12, 57.375}};
    std::string output;      // empty = the net's default (last) output
    std::string logits;      // optional classification output (default model: "logits")
    std::string precision = "f32"; // what runs: "f32", "bf16" or "int8" (a quantized model; never "auto")
};

// Input side of the default model (EfficientNet-Lite0): chosen by the measurement in
// docs/benchmarks.md (quality on planted near duplicates vs speed).
constexpr int kDefaultInputSize = 160;

// The cache dir: $VISLINT_CACHE, else $HOME/.cache/vislint.
std::string cache_dir();

// Throws vislint::Error naming the option when --model-mean / --model-std (1 or 3 finite
// numbers, std > 0), --model-size (0 or 16..1024) or --precision (auto|f32|bf16|int8) is
// unusable. Needs no model file.
void check_model_options(const ModelOptions& options);

// Resolves ModelOptions into a spec. "default" reads <cache>/efficientnet_lite0/model.json.
// --precision auto becomes "bf16" when OpenVINO reports BF16 for this CPU, else "f32" ("int8"
// for a user's quantized --model); the
// precision is part of spec.id, so features of two precisions never mix in one work dir.
// --precision int8 takes the default model's int8 IR named in model.json ("int8": {"file"}),
// or a user's --model that is already quantized (FakeQuantize nodes); a quantized --model
// runs only at int8.
// Throws vislint::Error that says how to fix it when the model is missing or unusable, when
// the int8 IR is missing ("run make model"), for int8 with an unquantized --model (and the
// reverse) and for bf16 on a CPU without it.
// REQUIRES: options.model != "none".
ModelSpec resolve_model(const ModelOptions& options);

// What the inference runtime sees of this machine, for run.json: the /proc/cpuinfo flags that
// decide its kernels (avx2, avx512f, avx512_bf16, amx_bf16, ...; those present, in a fixed
// order), OpenVINO's CPU capabilities ("FP32", "BF16", "INT8", ...; empty when it cannot load
// its CPU plugin) and its version.
std::vector<std::string> cpu_flags();
std::vector<std::string> runtime_capabilities();
std::string runtime_version();

// The model input for one image: the working image (8-bit BGR) resized to size x size
// (squashed, not cropped: the whole picture counts); INTER_AREA when shrinking by 2x or more,
// else bilinear.
cv::Mat model_input(const cv::Mat& bgr, int size);

class Embedder {
public:
    // Loads the model, compiles it for the CPU at spec.precision with `threads` inference
    // threads in total shared by `streams` infer requests (threads / streams each, no CPU
    // pinning, so decode threads keep their cores), and checks it once on two test pictures.
    // Throws vislint::Error naming the file when OpenVINO cannot read it, when it is quantized
    // and spec.precision is not "int8" or the reverse, when its declared
    // input is not N x 3 x H x W (one input; batch 1 or dynamic; H = W = input_size when fixed),
    // when an output named by the spec does not exist (the message lists those that do), or
    // when the embedding output is not one vector of at least 2 values per image, or is all
    // zeros or not finite for a test picture.
    // REQUIRES: 1 <= streams <= threads.
    explicit Embedder(const ModelSpec& spec, int threads = 1, int streams = 1);
    ~Embedder();
    Embedder(const Embedder&) = delete;
    Embedder& operator=(const Embedder&) = delete;

    int dim() const { return dim_; }
    const ModelSpec& spec() const { return spec_; }
    int streams() const { return streams_; }

    // Thread-safe (see above). inputs: size x size 8-bit BGR images (model_input()). out: inputs.size() x dim floats,
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
    int streams_ = 1;
};

} // namespace vislint::embed
