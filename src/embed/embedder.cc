#include "embed/embedder.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#include <xxhash.h>

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

} // namespace

std::string cache_dir() {
    if (const char* c = std::getenv("VISLINT_CACHE"); c && *c) return c;
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : "/tmp") + "/.cache/vislint";
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
    auto set3 = [&](const std::vector<double>& v, std::array<double, 3>* out, const char* name) {
        if (v.empty()) return;
        if (v.size() == 1) *out = {v[0], v[0], v[0]};
        else if (v.size() == 3) *out = {v[0], v[1], v[2]};
        else throw Error(std::string("--model-") + name + " takes 1 or 3 numbers (R,G,B)");
    };
    set3(o.mean, &spec.mean, "mean");
    set3(o.std, &spec.std, "std");
    for (double s : spec.std)
        if (s <= 0) throw Error("--model-std values must be positive");
    if (!o.output.empty()) spec.output = o.output;
    if (spec.input_size < 16 || spec.input_size > 1024)
        throw Error("--model-size must be between 16 and 1024");
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

struct Embedder::Impl {
    cv::dnn::Net net;
    std::vector<std::string> outputs;
};

Embedder::Embedder(const ModelSpec& spec) : impl_(std::make_unique<Impl>()), spec_(spec) {
    try {
        impl_->net = cv::dnn::readNetFromONNX(spec.path);
        impl_->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
        impl_->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    } catch (const cv::Exception& e) {
        throw Error("cannot load model " + spec.path + " with OpenCV DNN: " + e.what() +
                    "(OpenCV 4.6 imports ONNX up to opset ~13 and only the 1-input Clip; re-export "
                    "at opset <= 10, or pass --model none)");
    }
    impl_->outputs.push_back(spec.output);
    if (!spec.logits.empty()) impl_->outputs.push_back(spec.logits);
    // Probe the output size with one blank image.
    std::vector<float> probe;
    try {
        embed({cv::Mat(spec.input_size, spec.input_size, CV_8UC3, cv::Scalar(127, 127, 127))}, &probe);
    } catch (const cv::Exception& e) {
        throw Error("model " + spec.path + " failed on a " + std::to_string(spec.input_size) + "x" +
                    std::to_string(spec.input_size) + " input: " + e.what() +
                    "(check --model-size and --model-output)");
    }
    if (dim_ <= 0) throw Error("model " + spec.path + " produced an empty output");
}

Embedder::~Embedder() = default;

void Embedder::embed(const std::vector<cv::Mat>& inputs, std::vector<float>* out,
                     std::vector<float>* logits) {
    const int n = int(inputs.size());
    const int s = spec_.input_size;
    // blob = (rgb - mean) / std, NCHW.
    cv::Mat blob({n, 3, s, s}, CV_32F);
    for (int i = 0; i < n; ++i) {
        cv::Mat img = inputs[i];
        if (img.cols != s || img.rows != s) img = model_input(img, s);
        for (int c = 0; c < 3; ++c) {
            cv::Mat plane(s, s, CV_32F, blob.ptr<float>(i, c));
            cv::Mat channel;
            cv::extractChannel(img, channel, 2 - c); // BGR -> RGB
            channel.convertTo(plane, CV_32F, 1.0 / spec_.std[c], -spec_.mean[c] / spec_.std[c]);
        }
    }
    impl_->net.setInput(blob);
    std::vector<cv::Mat> outs;
    if (spec_.output.empty()) outs.push_back(impl_->net.forward());
    else impl_->net.forward(outs, impl_->outputs);
    cv::Mat feats = outs[0].reshape(1, n);
    const int d = feats.cols;
    dim_ = d;
    out->resize(size_t(n) * d);
    for (int i = 0; i < n; ++i) {
        const float* src = feats.ptr<float>(i);
        double norm = 0;
        for (int j = 0; j < d; ++j) norm += double(src[j]) * src[j];
        const float inv = norm > 0 ? float(1.0 / std::sqrt(norm)) : 0.f;
        float* dst = out->data() + size_t(i) * d;
        for (int j = 0; j < d; ++j) dst[j] = src[j] * inv;
    }
    if (logits && outs.size() > 1) {
        cv::Mat l = outs[1].reshape(1, n);
        logits->assign(l.ptr<float>(0), l.ptr<float>(0) + size_t(n) * l.cols);
    }
}

} // namespace vislint::embed
