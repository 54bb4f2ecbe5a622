#include "embed/embedder.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <openvino/openvino.hpp>
#include <xxhash.h>

#include "embed/onnx_graph.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::embed {
namespace {

// An IR's weights live in the .bin next to its .xml: both decide the features.
std::string file_digest(const std::string& path) {
    XXH3_state_t* st = XXH3_createState();
    XXH3_64bits_reset(st);
    std::vector<char> buf(1 << 20);
    std::vector<std::string> files{path};
    if (fs::path(path).extension() == ".xml") files.push_back(fs::path(path).replace_extension(".bin").string());
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        while (in) {
            in.read(buf.data(), std::streamsize(buf.size()));
            XXH3_64bits_update(st, buf.data(), size_t(in.gcount()));
        }
    }
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)XXH3_64bits_digest(st));
    XXH3_freeState(st);
    return hex;
}

std::string fix_hint(const ModelOptions& o) {
    return o.model == "default" ? "run `make model` (exports EfficientNet-Lite0 into " + cache_dir() +
                                      ") or pass --model none"
                                : "pass a valid ONNX or OpenVINO IR (.xml) file to --model, or --model none";
}

bool is_ir(const std::string& path) { return fs::path(path).extension() == ".xml"; }

std::string joined(const std::vector<std::string>& names, const char* quote = "'") {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + (quote + n + quote);
    return s.empty() ? "(none)" : s;
}

// NNCF's post-training quantization (and OpenVINO's reading of an ONNX QDQ model) leaves
// FakeQuantize nodes; the CPU plugin runs the ops around them in int8.
bool is_quantized(const ov::Model& m) {
    for (const auto& op : m.get_ops())
        if (std::string(op->get_type_name()) == "FakeQuantize") return true;
    return false;
}

// --precision int8 runs a quantized model, and only it: otherwise the precision written to
// run.json would not be what ran.
void check_quantization(const ov::Model& m, const std::string& path, const std::string& precision) {
    const bool quantized = is_quantized(m);
    if (precision == "int8" && !quantized)
        throw Error("--precision int8 needs a quantized model (FakeQuantize nodes, e.g. from NNCF "
                    "post-training quantization); " + path + " has none: pass a quantized ONNX or "
                    "OpenVINO IR, or use --model default (`make model` builds its int8 version), "
                    "or --precision auto, f32 or bf16");
    if (precision != "int8" && quantized)
        throw Error("model " + path + " is quantized (int8); pass --precision int8 to run it");
}

std::string fmt_double(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
}

} // namespace

std::string cache_dir() {
    if (const char* c = std::getenv("VISLINT_CACHE"); c && *c) return c;
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : "/tmp") + "/.cache/vislint";
}

void check_model_options(const ModelOptions& o) {
    for (const auto& [values, name] : {std::pair{&o.mean, "--model-mean"}, std::pair{&o.std, "--model-std"}}) {
        if (!values->empty() && values->size() != 1 && values->size() != 3)
            throw Error(std::string(name) + " takes 1 or 3 numbers (R,G,B), got " + std::to_string(values->size()));
        for (double v : *values) {
            if (!std::isfinite(v))
                throw Error(std::string(name) + " values must be finite numbers (got " + fmt_double(v) + ")");
            if (values == &o.std && v <= 0)
                throw Error(std::string(name) + " values must be positive (got " + fmt_double(v) + ")");
        }
    }
    if (o.input_size != 0 && (o.input_size < 16 || o.input_size > 1024))
        throw Error("--model-size must be 0 (the model's own) or between 16 and 1024 (got " +
                    std::to_string(o.input_size) + ")");
    if (o.precision != "auto" && o.precision != "f32" && o.precision != "bf16" && o.precision != "int8")
        throw Error("--precision must be auto, f32, bf16 or int8 (got '" + o.precision + "')");
}

std::vector<std::string> cpu_flags() {
    static const std::vector<std::string> flags = [] {
        std::set<std::string> present;
        std::ifstream in("/proc/cpuinfo");
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("flags", 0) != 0) continue;
            std::istringstream words(line.substr(line.find(':') + 1));
            for (std::string w; words >> w;) present.insert(w);
            break;
        }
        std::vector<std::string> out;
        for (const char* f : {"sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni",
                              "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"})
            if (present.count(f)) out.push_back(f);
        return out;
    }();
    return flags;
}

std::vector<std::string> runtime_capabilities() {
    // One ov::Core only for the question (the CPU plugin loads once per process either way).
    static const std::vector<std::string> caps = [] {
        try {
            ov::Core core;
            return core.get_property("CPU", ov::device::capabilities);
        } catch (const std::exception&) {
            return std::vector<std::string>{};
        }
    }();
    return caps;
}

std::string runtime_version() {
    const ov::Version v = ov::get_openvino_version();
    return std::string("OpenVINO ") + v.buildNumber;
}

ModelSpec resolve_model(const ModelOptions& o) {
    ModelSpec spec;
    if (o.model == "default") {
        fs::path dir = fs::path(cache_dir()) / "efficientnet_lite0";
        fs::path meta = dir / "model.json";
        if (!fs::is_regular_file(meta))
            throw Error("default model not found (" + meta.string() + " is missing); " + fix_hint(o));
        nlohmann::json j;
        try {
            std::ifstream(meta) >> j;
            spec.name = j.value("name", "efficientnet_lite0");
            spec.input_size = o.input_size > 0 ? o.input_size : kDefaultInputSize;
            const auto& files = j.at("files");
            std::string key = std::to_string(spec.input_size);
            std::string file = files.contains(key) ? files.at(key).get<std::string>()
                                                   : files.begin().value().get<std::string>();
            spec.path = (dir / file).string();
            auto mean = j.at("mean").get<std::vector<double>>();
            auto std = j.at("std").get<std::vector<double>>();
            for (int c = 0; c < 3; ++c) {
                spec.mean[c] = mean.at(c);
                spec.std[c] = std.at(c);
            }
            const auto outputs = j.at("outputs").get<std::vector<std::string>>();
            spec.output = outputs.at(0);
            spec.logits = outputs.size() > 1 ? outputs[1] : "";
            if (o.precision == "int8") {
                // One IR for every input size (dynamic H x W), like the ONNX file.
                if (!j.contains("int8"))
                    throw Error("--precision int8: " + meta.string() + " names no int8 model (an older "
                                "`make model` wrote it); run `make model` to build it");
                spec.path = (dir / j.at("int8").at("file").get<std::string>()).string();
            }
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error("cannot read " + meta.string() + ": " + e.what() + "; " + fix_hint(o));
        }
        if (o.precision == "int8") {
            for (const fs::path& f : {fs::path(spec.path), fs::path(spec.path).replace_extension(".bin")})
                if (!fs::is_regular_file(f))
                    throw Error("--precision int8: the default model's int8 file " + f.string() +
                                " is missing; run `make model` (it quantizes EfficientNet-Lite0 into " +
                                dir.string() + ")");
        }
    } else {
        spec.path = o.model;
        spec.name = fs::path(o.model).stem().string();
        const auto ext = fs::path(o.model).extension();
        if (ext != ".onnx" && ext != ".xml")
            throw Error("--model " + o.model + ": expected an .onnx file, an OpenVINO IR .xml, 'default' or 'none'");
        if (ext == ".xml" && !fs::is_regular_file(fs::path(o.model).replace_extension(".bin")))
            throw Error("--model " + o.model + ": an OpenVINO IR needs its weights next to it (" +
                        fs::path(o.model).replace_extension(".bin").string() + " is missing)");
    }
    if (!fs::is_regular_file(spec.path))
        throw Error("model file not found: " + spec.path + "; " + fix_hint(o));
    if (o.input_size > 0) spec.input_size = o.input_size;
    check_model_options(o);
    auto set3 = [&](const std::vector<double>& v, std::array<double, 3>* out) {
        if (v.size() == 1) *out = {v[0], v[0], v[0]};
        else if (v.size() == 3) *out = {v[0], v[1], v[2]};
    };
    set3(o.mean, &spec.mean);
    set3(o.std, &spec.std);
    for (int c = 0; c < 3; ++c) // model.json's own values
        if (!std::isfinite(spec.mean[c]) || !(spec.std[c] > 0) || !std::isfinite(spec.std[c]))
            throw Error("model " + spec.path + ": its mean / std must be finite numbers with std > 0");
    if (!o.output.empty()) spec.output = o.output;
    if (spec.input_size < 16 || spec.input_size > 1024)
        throw Error("--model-size must be between 16 and 1024 (got " + std::to_string(spec.input_size) + ")");
    const std::vector<std::string> caps = runtime_capabilities();
    if (caps.empty())
        throw Error("OpenVINO cannot load its CPU plugin (" + runtime_version() +
                    "); reinstall the openvino wheel (pip install openvino==2026.4.1)");
    const bool has_bf16 = std::find(caps.begin(), caps.end(), ov::device::capability::BF16) != caps.end();
    if (o.precision == "bf16" && !has_bf16)
        throw Error("--precision bf16 needs a CPU with BF16 support (AVX512-BF16 or AMX); OpenVINO reports "
                    "this one as " + joined(caps, "") + "; use --precision auto or f32");
    spec.precision = o.precision == "auto" ? (has_bf16 ? "bf16" : "f32") : o.precision;
    if (o.model != "default") {
        // Early, before the scan touches the work dir; a file OpenVINO cannot read is left to
        // the Embedder, whose message says why.
        std::shared_ptr<ov::Model> m;
        try {
            m = ov::Core().read_model(spec.path);
        } catch (const std::exception&) {
        }
        // auto runs a quantized model at the only precision it has.
        if (m && o.precision == "auto" && is_quantized(*m)) spec.precision = "int8";
        if (m) check_quantization(*m, spec.path, spec.precision);
    }
    // "resize 2": model_input()'s bilinear below 2x (features of older scans are not reused).
    char pre[200];
    std::snprintf(pre, sizeof(pre), "size %d resize 2 mean %.3f,%.3f,%.3f std %.3f,%.3f,%.3f out %s precision %s",
                  spec.input_size, spec.mean[0], spec.mean[1], spec.mean[2], spec.std[0], spec.std[1],
                  spec.std[2], spec.output.c_str(), spec.precision.c_str());
    spec.id = spec.name + " " + file_digest(spec.path) + " " + pre;
    return spec;
}

cv::Mat model_input(const cv::Mat& bgr, int size) {
    if (bgr.cols == size && bgr.rows == size) return bgr;
    // INTER_AREA where it averages 2 or more source pixels per output pixel. Below that
    // (256 -> 160 is 1.6), bilinear already reads every source pixel, and OpenCV's generic
    // INTER_AREA for such ratios took 0.39 ms of the scan's 1.3 ms per image outside inference.
    cv::Mat out;
    const bool area = bgr.cols >= 2 * size && bgr.rows >= 2 * size;
    cv::resize(bgr, out, cv::Size(size, size), 0, 0, area ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
}

namespace {

// "Nx3xHxW" text of a declared shape: fixed axes as numbers, dynamic ones by the symbol the
// ONNX file gives them ("?" when it names none, or for an IR).
std::string shape_text(const ov::PartialShape& ps, const OnnxValue* declared) {
    if (ps.rank().is_dynamic()) return "(no declared shape)";
    if (ps.rank().get_length() == 0) return "a scalar";
    std::string s;
    for (int64_t i = 0; i < ps.rank().get_length(); ++i) {
        if (i) s += "x";
        if (ps[i].is_static()) s += std::to_string(ps[i].get_length());
        else if (declared && size_t(i) < declared->symbols.size() && !declared->symbols[size_t(i)].empty())
            s += declared->symbols[size_t(i)];
        else s += "?";
    }
    return s;
}

std::string tensor_shape(const ov::Shape& shape) {
    if (shape.empty()) return "a scalar";
    std::string s;
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
    return s;
}

std::string name_of(const ov::Output<ov::Node>& port) {
    return port.get_names().empty() ? port.get_node()->get_friendly_name() : port.get_any_name();
}

bool usable_row(const float* v, int d) {
    bool nonzero = false;
    for (int j = 0; j < d; ++j) {
        if (!std::isfinite(v[j])) return false;
        nonzero |= v[j] != 0;
    }
    return nonzero;
}

// Two different, structured test pictures (gradients and a checkerboard): a blank image can
// legitimately give a near-constant output, these cannot unless the model ignores its input.
std::vector<cv::Mat> probe_images(int s) {
    std::vector<cv::Mat> out;
    for (int k = 0; k < 2; ++k) {
        cv::Mat img(s, s, CV_8UC3);
        for (int y = 0; y < s; ++y)
            for (int x = 0; x < s; ++x) {
                int u = k ? y : x, v = k ? x : y;
                img.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(255 * u / s), uchar(255 * v / s),
                                                    uchar(((u / 8 + v / 8) % 2) ? 230 : 20));
            }
        out.push_back(img);
    }
    return out;
}

// n rows of `cols` floats.
struct Rows {
    int cols = -1;
    std::vector<float> data;
    const float* row(int i) const { return data.data() + size_t(i) * size_t(cols); }
};

} // namespace

struct Embedder::Impl {
    ov::Core core;
    ov::CompiledModel compiled;
    std::vector<ov::Output<const ov::Node>> outputs; // [embedding, logits (optional)]
    std::vector<std::string> output_names;           // for messages
    std::vector<std::string> declared;               // declared shape text per output
    bool one_at_a_time = false;                      // the model declares a fixed batch of 1

    // Idle infer requests: a caller takes one for the length of its batch.
    std::mutex mu;
    std::condition_variable freed;
    std::vector<ov::InferRequest> idle;

    ov::InferRequest take() {
        std::unique_lock<std::mutex> lock(mu);
        freed.wait(lock, [&] { return !idle.empty(); });
        ov::InferRequest r = std::move(idle.back());
        idle.pop_back();
        return r;
    }
    void give_back(ov::InferRequest r) {
        {
            std::lock_guard<std::mutex> lock(mu);
            idle.push_back(std::move(r));
        }
        freed.notify_one();
    }

    // One Rows per output in `outputs`, inputs.size() rows each (as the model gives them: no
    // normalisation). Throws vislint::Error when an output is not one vector per image.
    std::vector<Rows> run(const ModelSpec& spec, const std::vector<cv::Mat>& inputs) {
        struct Lease {
            Impl* impl;
            ov::InferRequest req;
            ~Lease() { impl->give_back(std::move(req)); }
        } lease{this, take()};
        ov::InferRequest& req = lease.req;
        const int n = int(inputs.size());
        const int s = spec.input_size;
        const int per_infer = one_at_a_time ? 1 : n;
        std::vector<Rows> rows(outputs.size());
        for (int first = 0; first < n; first += per_infer) {
            // (rgb - mean) / std, NCHW.
            ov::Tensor blob(ov::element::f32, ov::Shape{size_t(per_infer), 3, size_t(s), size_t(s)});
            float* dst = blob.data<float>();
            for (int i = 0; i < per_infer; ++i) {
                cv::Mat img = inputs[size_t(first + i)];
                if (img.cols != s || img.rows != s) img = model_input(img, s);
                for (int c = 0; c < 3; ++c) {
                    cv::Mat plane(s, s, CV_32F, dst + (size_t(i) * 3 + size_t(c)) * size_t(s) * size_t(s));
                    cv::Mat channel;
                    cv::extractChannel(img, channel, 2 - c); // BGR -> RGB
                    channel.convertTo(plane, CV_32F, 1.0 / spec.std[c], -spec.mean[c] / spec.std[c]);
                }
            }
            req.set_input_tensor(blob);
            req.infer();
            for (size_t o = 0; o < outputs.size(); ++o) {
                const ov::Tensor t = req.get_tensor(outputs[o]);
                const ov::Shape shape = t.get_shape();
                const size_t total = t.get_size();
                // One vector per image: the first axis is the batch (or the batch is 1).
                const bool per_image = total > 0 && total % size_t(per_infer) == 0 &&
                                       (per_infer == 1 || (shape.size() >= 2 && shape[0] == size_t(per_infer)));
                if (!per_image)
                    throw Error("model " + spec.path + ": output '" + output_names[o] + "'" + declared[o] +
                                " has shape " + tensor_shape(shape) + " for a batch of " +
                                std::to_string(per_infer) +
                                " image(s); vislint needs one vector per image (batch x values)");
                if (t.get_element_type() != ov::element::f32)
                    throw Error("model " + spec.path + ": output '" + output_names[o] + "' holds " +
                                t.get_element_type().get_type_name() + " values; vislint needs float32");
                const int cols = int(total / size_t(per_infer));
                if (rows[o].cols >= 0 && rows[o].cols != cols)
                    throw Error("model " + spec.path + ": output '" + output_names[o] +
                                "' changes size from image to image");
                rows[o].cols = cols;
                const float* src = t.data<const float>();
                rows[o].data.insert(rows[o].data.end(), src, src + total);
            }
        }
        return rows;
    }
};

Embedder::Embedder(const ModelSpec& spec, int threads, int streams)
    : impl_(std::make_unique<Impl>()), spec_(spec), streams_(std::max(1, streams)) {
    const std::string model = "model " + spec.path;
    // An ONNX file's own signature names its symbolic axes ("N", "H") for the messages; it also
    // refuses a file that is not ONNX at all with a clearer message than the frontend's.
    OnnxSignature sig;
    if (!is_ir(spec.path)) sig = read_onnx_signature(spec.path);
    auto onnx_value = [&](const std::vector<OnnxValue>& values, const std::string& name) -> const OnnxValue* {
        for (const auto& v : values)
            if (v.name == name) return &v;
        return nullptr;
    };
    std::shared_ptr<ov::Model> m;
    try {
        m = impl_->core.read_model(spec.path);
    } catch (const std::exception& e) {
        throw Error("cannot load model " + spec.path + " with " + runtime_version() + ": " + e.what() +
                    "; pass a valid ONNX or OpenVINO IR (.xml) file to --model, or --model none");
    }
    check_quantization(*m, spec.path, spec.precision);
    std::vector<std::string> input_names, output_names;
    for (const auto& p : m->inputs()) input_names.push_back(name_of(p));
    for (const auto& p : m->outputs()) output_names.push_back(name_of(p));
    if (m->inputs().size() != 1)
        throw Error(model + " has " + std::to_string(m->inputs().size()) + " inputs (" + joined(input_names) +
                    "); vislint feeds it one image tensor, N x 3 x H x W");
    const std::string in_name = input_names[0];
    const ov::PartialShape in = m->input().get_partial_shape();
    const std::string in_text = shape_text(in, onnx_value(sig.inputs, in_name));
    const std::string feeds = "; vislint feeds N x 3 x H x W images (RGB, channels first)";
    const int s = spec.input_size;
    if (in.rank().is_static()) {
        auto fixed = [&](int i) { return in[i].is_static() ? in[i].get_length() : int64_t(-1); };
        if (in.rank().get_length() != 4 || (fixed(1) > 0 && fixed(1) != 3))
            throw Error(model + ": its input '" + in_name + "' is " + in_text + feeds);
        if (fixed(0) > 1)
            throw Error(model + ": its input '" + in_name + "' is " + in_text + ", a fixed batch of " +
                        std::to_string(fixed(0)) + "; vislint needs a batch of 1 or a dynamic batch");
        const int64_t h = fixed(2), w = fixed(3);
        if ((h > 0 && h != s) || (w > 0 && w != s)) {
            if (h > 0 && h == w)
                throw Error(model + ": its input '" + in_name + "' is " + in_text + ", a fixed " +
                            std::to_string(h) + "x" + std::to_string(w) + " image; pass --model-size " +
                            std::to_string(h) + " (it was " + std::to_string(s) + ")");
            throw Error(model + ": its input '" + in_name + "' is " + in_text +
                        "; vislint feeds square images of --model-size " + std::to_string(s));
        }
        impl_->one_at_a_time = fixed(0) == 1;
    }
    // The embedding: a graph output, or any intermediate tensor by name (added as an output).
    std::vector<std::string> wanted;
    for (const std::string* name : {&spec.output, &spec.logits})
        if (!name->empty()) wanted.push_back(*name);
    if (wanted.empty()) wanted.push_back(output_names.back()); // the model's last output
    for (const std::string& name : wanted) {
        bool known = std::find(output_names.begin(), output_names.end(), name) != output_names.end();
        if (!known) {
            try {
                m->add_output(name);
                known = true;
            } catch (const std::exception&) {
            }
        }
        if (!known)
            throw Error(model + " has no output named '" + name + "' (--model-output); its outputs are: " +
                        joined(output_names));
        const OnnxValue* declared = onnx_value(sig.outputs, name);
        impl_->output_names.push_back(name);
        impl_->declared.push_back(declared && declared->has_shape
                                      ? " (declared as " + shape_text(m->output(name).get_partial_shape(), declared) + ")"
                                      : "");
    }
    // Static H x W (fixed kernels), a dynamic batch unless the model fixes it at 1.
    try {
        m->reshape(ov::PartialShape{impl_->one_at_a_time ? 1 : -1, 3, s, s});
    } catch (const std::exception& e) {
        throw Error(model + " cannot take a " + std::to_string(s) + "x" + std::to_string(s) + " input: " +
                    e.what() + " (check --model-size)");
    }
    const int n_threads = std::max(streams_, threads);
    // int8: the quantized ops run in int8, the rest (the stem conv, pooling, the last FC) in f32,
    // so an int8 scan computes the same on CPUs with and without bf16.
    const ov::element::Type rest = spec.precision == "bf16" ? ov::element::bf16 : ov::element::f32;
    try {
        impl_->compiled = impl_->core.compile_model(
            m, "CPU", ov::hint::inference_precision(rest),
            ov::inference_num_threads(n_threads), ov::num_streams(streams_),
            ov::hint::enable_cpu_pinning(false));
        for (const std::string& name : impl_->output_names)
            impl_->outputs.push_back(impl_->compiled.output(name));
        for (int r = 0; r < streams_; ++r) impl_->idle.push_back(impl_->compiled.create_infer_request());
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error("cannot compile " + model + " with " + runtime_version() + " for the CPU: " + e.what());
    }
    const ov::element::Type ran = impl_->compiled.get_property(ov::hint::inference_precision);
    if (ran != rest)
        throw Error(model + ": OpenVINO compiled it for " + ran.get_type_name() + " inference, not the " +
                    rest.get_type_name() + " asked for (--precision " + spec.precision + ")");
    std::vector<Rows> probe;
    try {
        probe = impl_->run(spec_, probe_images(s));
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(model + " failed on a " + std::to_string(s) + "x" + std::to_string(s) + " input: " +
                    e.what() + " (check --model-size and --model-output)");
    }
    const Rows& f = probe[0];
    const std::string output = "output '" + impl_->output_names[0] + "'";
    if (f.cols < 2)
        throw Error(model + ": " + output + " has " + std::to_string(f.cols) +
                    " value per image; an embedding needs a vector (pick another output with --model-output)");
    for (int i = 0; i < 2; ++i) {
        const float* v = f.row(i);
        if (!std::all_of(v, v + f.cols, [](float x) { return std::isfinite(x); }))
            throw Error(model + ": " + output + " is not finite (NaN or infinity) for a test image; the "
                        "model cannot embed images (check the file and --model-mean / --model-std)");
        if (std::all_of(v, v + f.cols, [](float x) { return x == 0; }))
            throw Error(model + ": " + output + " is all zeros for a test image; the model tells images "
                        "apart by nothing (check the file and --model-output)");
    }
    dim_ = f.cols;
}

Embedder::~Embedder() = default;

void Embedder::embed(const std::vector<cv::Mat>& inputs, std::vector<float>* out,
                     std::vector<float>* logits) {
    const int n = int(inputs.size());
    out->clear();
    if (logits) logits->clear();
    if (n == 0) return;
    std::vector<Rows> outs;
    try {
        outs = impl_->run(spec_, inputs);
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error("model " + spec_.path + " failed on a batch of " + std::to_string(n) + " image(s): " + e.what());
    }
    const Rows& feats = outs[0];
    if (feats.cols != dim_)
        throw Error("model " + spec_.path + " gave " + std::to_string(feats.cols) + " values per image, " +
                    std::to_string(dim_) + " before");
    const int d = dim_;
    out->assign(size_t(n) * d, 0.f);
    for (int i = 0; i < n; ++i) {
        const float* src = feats.row(i);
        if (!usable_row(src, d)) continue; // stays all zeros: the caller leaves the image out
        double norm = 0;
        for (int j = 0; j < d; ++j) norm += double(src[j]) * src[j];
        const float inv = float(1.0 / std::sqrt(norm));
        float* dst = out->data() + size_t(i) * d;
        for (int j = 0; j < d; ++j) dst[j] = src[j] * inv;
    }
    if (logits && outs.size() > 1) *logits = std::move(outs[1].data);
}

} // namespace vislint::embed
