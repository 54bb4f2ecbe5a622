#include "embed/onnx_graph.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "vislint/status.h"

namespace vislint::embed {
namespace {

// Field numbers of onnx.proto (stable since IR version 3).
constexpr uint32_t kModelGraph = 7;
constexpr uint32_t kGraphInitializer = 5, kGraphInput = 11, kGraphOutput = 12, kGraphSparseInitializer = 15;
constexpr uint32_t kTensorName = 8;
constexpr uint32_t kSparseValues = 1;
constexpr uint32_t kValueName = 1, kValueType = 2;
constexpr uint32_t kTypeTensor = 1;
constexpr uint32_t kTensorTypeShape = 2;
constexpr uint32_t kShapeDim = 1;
constexpr uint32_t kDimValue = 1, kDimParam = 2;

struct Malformed {};

// One protobuf message: a byte range, read field by field.
class Message {
public:
    Message(const uint8_t* b, const uint8_t* e) : p_(b), e_(e) {}

    // Advances to the next field; false at the end. Length-delimited payloads land in bytes().
    bool next() {
        if (p_ >= e_) return false;
        uint64_t tag = varint();
        field_ = uint32_t(tag >> 3);
        wire_ = uint32_t(tag & 7);
        switch (wire_) {
        case 0: value_ = varint(); break;
        case 1: skip(8); break;
        case 5: skip(4); break;
        case 2: {
            uint64_t n = varint();
            if (n > uint64_t(e_ - p_)) throw Malformed{};
            b_ = p_;
            p_ += n;
            break;
        }
        default: throw Malformed{}; // groups (3, 4) are not used by onnx.proto
        }
        return true;
    }
    uint32_t field() const { return field_; }
    bool is_bytes() const { return wire_ == 2; }
    bool is_varint() const { return wire_ == 0; }
    uint64_t value() const { return value_; }
    Message sub() const { return Message(b_, p_); }
    std::string text() const { return std::string(reinterpret_cast<const char*>(b_), size_t(p_ - b_)); }

private:
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p_ >= e_) throw Malformed{};
            uint8_t c = *p_++;
            v |= uint64_t(c & 0x7f) << shift;
            if (!(c & 0x80)) return v;
        }
        throw Malformed{};
    }
    void skip(size_t n) {
        if (n > size_t(e_ - p_)) throw Malformed{};
        p_ += n;
    }

    const uint8_t* p_;
    const uint8_t* e_;
    const uint8_t* b_ = nullptr;
    uint32_t field_ = 0, wire_ = 0;
    uint64_t value_ = 0;
};

std::string name_of(Message m, uint32_t name_field) {
    while (m.next())
        if (m.field() == name_field && m.is_bytes()) return m.text();
    return "";
}

OnnxValue value_info(Message m) {
    OnnxValue v;
    while (m.next()) {
        if (m.field() == kValueName && m.is_bytes()) v.name = m.text();
        if (m.field() != kValueType || !m.is_bytes()) continue;
        Message type = m.sub();
        while (type.next()) {
            if (type.field() != kTypeTensor || !type.is_bytes()) continue;
            Message tensor = type.sub();
            while (tensor.next()) {
                if (tensor.field() != kTensorTypeShape || !tensor.is_bytes()) continue;
                v.has_shape = true;
                Message shape = tensor.sub();
                while (shape.next()) {
                    if (shape.field() != kShapeDim || !shape.is_bytes()) continue;
                    int64_t value = -1;
                    std::string symbol;
                    Message dim = shape.sub();
                    while (dim.next()) {
                        if (dim.field() == kDimValue && dim.is_varint()) value = int64_t(dim.value());
                        if (dim.field() == kDimParam && dim.is_bytes()) symbol = dim.text();
                    }
                    // A dim_value of 0 is how some exporters write "unknown".
                    v.dims.push_back(value > 0 ? value : -1);
                    v.symbols.push_back(value > 0 ? "" : symbol);
                }
            }
        }
    }
    return v;
}

// The file, memory-mapped read-only: weights are skipped, never paged in.
class Mapped {
public:
    explicit Mapped(const std::string& path) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw Error("cannot load model " + path + ": " + std::strerror(errno));
        struct stat st;
        if (::fstat(fd, &st) == 0 && st.st_size > 0) {
            size_ = size_t(st.st_size);
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            data_ = p == MAP_FAILED ? nullptr : static_cast<const uint8_t*>(p);
        }
        ::close(fd);
        if (!data_) throw Error("cannot load model " + path + ": the file is empty or cannot be mapped");
    }
    ~Mapped() { ::munmap(const_cast<uint8_t*>(data_), size_); }
    Mapped(const Mapped&) = delete;
    Mapped& operator=(const Mapped&) = delete;
    const uint8_t* begin() const { return data_; }
    const uint8_t* end() const { return data_ + size_; }

private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

} // namespace

OnnxSignature read_onnx_signature(const std::string& path) {
    Mapped file(path);
    OnnxSignature sig;
    try {
        Message model(file.begin(), file.end());
        bool has_graph = false;
        while (model.next()) {
            if (model.field() != kModelGraph || !model.is_bytes()) continue;
            has_graph = true;
            std::vector<OnnxValue> inputs;
            std::unordered_set<std::string> initializers;
            Message graph = model.sub();
            while (graph.next()) {
                if (!graph.is_bytes()) continue;
                switch (graph.field()) {
                case kGraphInput: inputs.push_back(value_info(graph.sub())); break;
                case kGraphOutput: sig.outputs.push_back(value_info(graph.sub())); break;
                case kGraphInitializer: initializers.insert(name_of(graph.sub(), kTensorName)); break;
                case kGraphSparseInitializer: {
                    Message sparse = graph.sub();
                    while (sparse.next())
                        if (sparse.field() == kSparseValues && sparse.is_bytes())
                            initializers.insert(name_of(sparse.sub(), kTensorName));
                    break;
                }
                default: break;
                }
            }
            // Before IR version 4 every weight is also listed as a graph input.
            for (auto& in : inputs)
                if (!initializers.count(in.name)) sig.inputs.push_back(std::move(in));
        }
        if (!has_graph) throw Malformed{};
    } catch (const Malformed&) {
        throw Error("cannot load model " + path + ": not an ONNX model (its protobuf encoding is damaged "
                    "or it has no graph)");
    }
    return sig;
}

std::string shape_text(const OnnxValue& v) {
    if (!v.has_shape) return "(no declared shape)";
    if (v.dims.empty()) return "a scalar";
    std::string s;
    for (size_t i = 0; i < v.dims.size(); ++i) {
        if (i) s += "x";
        s += v.dims[i] > 0 ? std::to_string(v.dims[i]) : (v.symbols[i].empty() ? "?" : v.symbols[i]);
    }
    return s;
}

} // namespace vislint::embed
