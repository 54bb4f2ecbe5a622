#include "embed/embedder.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#include <xxhash.h>

#include "embed/onnx_graph.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::embed {
namespace {

std::string file_digest(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    XXH3_state_t* st = XXH3_createState();
    XXH3_64bits_reset(st);
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        XXH3_64bits_update(st, buf.data(), size_t(in.gcount()));
    }
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)XXH3_64bits_digest(st));
    XXH3_freeState(st);
    return hex;
}

std::string fix_hint(const ModelOptions& o) {
    return o.model == "default" ? "run `make model` (exports EfficientNet-Lite0 into " + cache_dir() +
                                      ") or pass --model none"
                                : "pass a valid ONNX file to --model, or --model none";
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
        } catch (const std::exception& e) {
            throw Error("cannot read " + meta.string() + ": " + e.what() + "; " + fix_hint(o));
        }
    } else {
        spec.path = o.model;
        spec.name = fs::path(o.model).stem().string();
        if (fs::path(o.model).extension() != ".onnx")
            throw Error("--model " + o.model + ": expected an .onnx file, 'default' or 'none'");
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
    char pre[160];
    std::snprintf(pre, sizeof(pre), "size %d mean %.3f,%.3f,%.3f std %.3f,%.3f,%.3f out %s",
                  spec.input_size, spec.mean[0], spec.mean[1], spec.mean[2], spec.std[0], spec.std[1],
                  spec.std[2], spec.output.c_str());
    spec.id = spec.name + " " + file_digest(spec.path) + " " + pre;
    return spec;
}

cv::Mat model_input(const cv::Mat& bgr, int size) {
    if (bgr.cols == size && bgr.rows == size) return bgr;
    cv::Mat out;
    bool shrink = bgr.cols > size && bgr.rows > size;
    cv::resize(bgr, out, cv::Size(size, size), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
}

namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + ("'" + n + "'");
    return s.empty() ? "(none)" : s;
}

std::string mat_shape(const cv::Mat& m) {
    std::string s;
    for (int i = 0; i < m.dims; ++i) s += (i ? "x" : "") + std::to_string(m.size[i]);
    return s.empty() ? "(empty)" : s;
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

} // namespace

struct Embedder::Impl {
    cv::dnn::Net net;
    std::vector<std::string> outputs;
    bool one_at_a_time = false; // the model declares a fixed batch of 1

    // outs[o]: inputs.size() rows, one per image, of output o (as declared: no normalisation).
    // Throws vislint::Error when an output is not one vector per image.
    std::string default_output; // what "the net's last output" is called in messages
    std::vector<OnnxValue> declared; // the graph's outputs

    std::vector<cv::Mat> run(const ModelSpec& spec, const std::vector<cv::Mat>& inputs) {
        const int n = int(inputs.size());
        const int s = spec.input_size;
        const int per_forward = one_at_a_time ? 1 : n;
        std::vector<cv::Mat> rows(outputs.empty() ? 1 : outputs.size());
        for (int first = 0; first < n; first += per_forward) {
            // blob = (rgb - mean) / std, NCHW.
            cv::Mat blob({per_forward, 3, s, s}, CV_32F);
            for (int i = 0; i < per_forward; ++i) {
                cv::Mat img = inputs[size_t(first + i)];
                if (img.cols != s || img.rows != s) img = model_input(img, s);
                for (int c = 0; c < 3; ++c) {
                    cv::Mat plane(s, s, CV_32F, blob.ptr<float>(i, c));
                    cv::Mat channel;
                    cv::extractChannel(img, channel, 2 - c); // BGR -> RGB
                    channel.convertTo(plane, CV_32F, 1.0 / spec.std[c], -spec.mean[c] / spec.std[c]);
                }
            }
            net.setInput(blob);
            std::vector<cv::Mat> outs;
            if (spec.output.empty()) outs.push_back(net.forward());
            else net.forward(outs, outputs);
            for (size_t o = 0; o < outs.size() && o < rows.size(); ++o) {
                const std::string name = spec.output.empty() ? default_output : outputs[o];
                const cv::Mat& m = outs[o];
                // One vector per image: the first axis is the batch (or the batch is 1).
                const bool per_image = m.total() > 0 && m.total() % size_t(per_forward) == 0 &&
                                       (per_forward == 1 || (m.dims >= 2 && m.size[0] == per_forward));
                if (!per_image) {
                    std::string declared_as;
                    for (const auto& v : declared)
                        if (v.name == name && v.has_shape) declared_as = " (declared as " + shape_text(v) + ")";
                    throw Error("model " + spec.path + ": output '" + name + "'" + declared_as + " has shape " +
                                mat_shape(m) + " for a batch of " + std::to_string(per_forward) +
                                " image(s); vislint needs one vector per image (batch x values)");
                }
                cv::Mat r = m.reshape(1, per_forward);
                if (r.type() != CV_32F) r.convertTo(r, CV_32F);
                if (!rows[o].empty() && r.cols != rows[o].cols)
                    throw Error("model " + spec.path + ": output '" + name + "' changes size from image to image");
                rows[o].push_back(r);
            }
        }
        return rows;
    }
};

Embedder::Embedder(const ModelSpec& spec) : impl_(std::make_unique<Impl>()), spec_(spec) {
    // The declared signature first: OpenCV runs a blob of any shape through any graph, so a
    // model made for other inputs would otherwise fail (or not) deep inside a layer.
    const OnnxSignature sig = read_onnx_signature(spec.path);
    const std::string model = "model " + spec.path;
    std::vector<std::string> input_names, output_names;
    for (const auto& v : sig.inputs) input_names.push_back(v.name);
    for (const auto& v : sig.outputs) output_names.push_back(v.name);
    if (sig.inputs.size() != 1)
        throw Error(model + " has " + std::to_string(sig.inputs.size()) + " inputs (" + joined(input_names) +
                    "); vislint feeds it one image tensor, N x 3 x H x W");
    const OnnxValue& in = sig.inputs[0];
    const std::string feeds = "; vislint feeds N x 3 x H x W images (RGB, channels first)";
    if (in.has_shape) {
        const auto& d = in.dims;
        if (d.size() != 4 || (d[1] > 0 && d[1] != 3))
            throw Error(model + ": its input '" + in.name + "' is " + shape_text(in) + feeds);
        if (d[0] > 1)
            throw Error(model + ": its input '" + in.name + "' is " + shape_text(in) + ", a fixed batch of " +
                        std::to_string(d[0]) + "; vislint needs a batch of 1 or a dynamic batch");
        if ((d[2] > 0 && d[2] != spec.input_size) || (d[3] > 0 && d[3] != spec.input_size)) {
            if (d[2] > 0 && d[2] == d[3])
                throw Error(model + ": its input '" + in.name + "' is " + shape_text(in) + ", a fixed " +
                            std::to_string(d[2]) + "x" + std::to_string(d[3]) + " image; pass --model-size " +
                            std::to_string(d[2]) + " (it was " + std::to_string(spec.input_size) + ")");
            throw Error(model + ": its input '" + in.name + "' is " + shape_text(in) +
                        "; vislint feeds square images of --model-size " + std::to_string(spec.input_size));
        }
        impl_->one_at_a_time = d[0] == 1;
    }
    try {
        impl_->net = cv::dnn::readNetFromONNX(spec.path);
        impl_->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
        impl_->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    } catch (const cv::Exception& e) {
        throw Error("cannot load model " + spec.path + " with OpenCV DNN: " + e.what() +
                    "(OpenCV 4.6 imports ONNX up to opset ~13 and only the 1-input Clip; re-export "
                    "at opset <= 10, or pass --model none)");
    }
    impl_->declared = sig.outputs;
    impl_->default_output = sig.outputs.empty() ? "(last)" : sig.outputs.back().name;
    // Any graph output, or (OpenCV) any intermediate layer by name.
    const std::vector<std::string> layers = impl_->net.getLayerNames();
    for (const std::string* name : {&spec.output, &spec.logits}) {
        if (name->empty()) continue;
        bool known = std::find(output_names.begin(), output_names.end(), *name) != output_names.end() ||
                     std::find(layers.begin(), layers.end(), *name) != layers.end();
        if (!known)
            throw Error(model + " has no output named '" + *name + "' (--model-output); its outputs are: " +
                        joined(output_names));
        impl_->outputs.push_back(*name);
    }
    std::vector<cv::Mat> probe;
    try {
        probe = impl_->run(spec_, probe_images(spec.input_size));
    } catch (const cv::Exception& e) {
        throw Error(model + " failed on a " + std::to_string(spec.input_size) + "x" +
                    std::to_string(spec.input_size) + " input: " + e.what() +
                    "(check --model-size and --model-output)");
    }
    const cv::Mat& f = probe[0];
    const std::string output = "output '" + (spec.output.empty() ? impl_->default_output : spec.output) + "'";
    if (f.cols < 2)
        throw Error(model + ": " + output + " has " + std::to_string(f.cols) +
                    " value per image; an embedding needs a vector (pick another output with --model-output)");
    for (int i = 0; i < f.rows; ++i) {
        const float* v = f.ptr<float>(i);
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
    std::vector<cv::Mat> outs;
    try {
        outs = impl_->run(spec_, inputs);
    } catch (const cv::Exception& e) {
        throw Error("model " + spec_.path + " failed on a batch of " + std::to_string(n) + " image(s): " + e.what());
    }
    const cv::Mat& feats = outs[0];
    if (feats.cols != dim_)
        throw Error("model " + spec_.path + " gave " + std::to_string(feats.cols) + " values per image, " +
                    std::to_string(dim_) + " before");
    const int d = dim_;
    out->assign(size_t(n) * d, 0.f);
    for (int i = 0; i < n; ++i) {
        const float* src = feats.ptr<float>(i);
        if (!usable_row(src, d)) continue; // stays all zeros: the caller leaves the image out
        double norm = 0;
        for (int j = 0; j < d; ++j) norm += double(src[j]) * src[j];
        const float inv = float(1.0 / std::sqrt(norm));
        float* dst = out->data() + size_t(i) * d;
        for (int j = 0; j < d; ++j) dst[j] = src[j] * inv;
    }
    if (logits && outs.size() > 1) {
        const cv::Mat& l = outs[1];
        logits->clear();
        for (int i = 0; i < n; ++i) logits->insert(logits->end(), l.ptr<float>(i), l.ptr<float>(i) + l.cols);
    }
}

} // namespace vislint::embed
