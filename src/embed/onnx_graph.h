// The declared inputs and outputs of an ONNX file, read straight from its protobuf encoding.
//
// OpenCV DNN neither exposes a model's declared input shape nor checks an input blob against
// it, so a 1-channel or rank-2 model would run on a 3-channel blob and fail (or worse, not fail)
// deep inside a layer. Reading the graph's signature lets the embedder refuse such a model up
// front with the shape it declares. Only the graph's input / output / initializer names are
// decoded; weights are skipped without being read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vislint::embed {

struct OnnxValue {
    std::string name;
    bool has_shape = false;    // false: the file declares no shape (any rank)
    std::vector<int64_t> dims; // one per axis; -1 = symbolic or unknown (e.g. a dynamic batch)
    std::vector<std::string> symbols; // per axis: the symbolic name ("N"), "" when fixed or unnamed
};

struct OnnxSignature {
    std::vector<OnnxValue> inputs; // graph inputs that are fed at run time (initializers left out)
    std::vector<OnnxValue> outputs;
};

// Throws vislint::Error naming `path` when it cannot be read or is not an ONNX model.
OnnxSignature read_onnx_signature(const std::string& path);

// "1x3x224x224" / "Nx3xHxW" text of a declared shape ("?" for an unnamed unknown axis).
std::string shape_text(const OnnxValue& v);

} // namespace vislint::embed
