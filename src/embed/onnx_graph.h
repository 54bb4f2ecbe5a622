// The declared inputs and outputs of an ONNX file, read straight from its protobuf encoding.
//
// OpenVINO gives the declared shapes (ov::Model) but not the names of symbolic axes, and its
// ONNX frontend's message for a file that is not ONNX at all says little. This reader gives
// the embedder both: "Nx1xHxW" in a refusal, and "not an ONNX model" up front. Only the
// graph's input / output / initializer names are decoded; weights are skipped without being read.
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
