// Checks an export of tools/model/export_model.py with Debian's OpenCV 4.6 dnn module:
// accuracy against the torch reference data, batch consistency, and single-thread speed.
//
// Build (Debian libopencv-dnn-dev / -imgcodecs-dev / -imgproc-dev / -core-dev 4.6):
//   g++ -O2 -std=c++17 tools/model/check_opencv.cc -o /tmp/check_opencv -I/usr/include/opencv4 -lopencv_dnn -lopencv_imgcodecs -lopencv_imgproc -lopencv_core
// Run:
//   /tmp/check_opencv DIR [--no-bench]      (DIR = the --out of export_model.py)
//
// Reads DIR/model.json and DIR/reference/reference.json with cv::FileStorage (it parses JSON).
// Exits 1 if any top-1 differs from torch or any cosine(OpenCV, torch features) < 0.999.
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Meta {
  std::string input_name, color;
  std::vector<std::string> outputs;
  std::vector<double> mean, std;
  std::vector<int> sizes;
  std::map<int, std::string> files;
};

Meta read_meta(const std::string& dir) {
  cv::FileStorage fs(dir + "/model.json", cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
  if (!fs.isOpened()) throw std::runtime_error("cannot open " + dir + "/model.json");
  Meta m;
  fs["input_name"] >> m.input_name;
  fs["color"] >> m.color;
  for (const auto& n : fs["outputs"]) m.outputs.push_back((std::string)n);
  for (const auto& n : fs["mean"]) m.mean.push_back((double)n);
  for (const auto& n : fs["std"]) m.std.push_back((double)n);
  for (const auto& n : fs["sizes"]) m.sizes.push_back((int)n);
  cv::FileNode files = fs["files"];
  for (int s : m.sizes) m.files[s] = (std::string)files[std::to_string(s)];
  return m;
}

// (pixel - mean) / std, channels in model order (RGB if meta.color == "RGB"), NCHW float32.
cv::Mat make_blob(const std::vector<cv::Mat>& bgr, const Meta& m) {
  const bool swap = m.color == "RGB";
  cv::Mat blob = cv::dnn::blobFromImages(bgr, 1.0, cv::Size(), cv::Scalar(m.mean[0], m.mean[1], m.mean[2]),
                                         swap, /*crop=*/false, CV_32F);
  // blobFromImages has one scale factor in 4.6: divide per channel (exact for std = 128).
  const int n = blob.size[0], hw = blob.size[2] * blob.size[3];
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) {
      float* p = blob.ptr<float>(i, c);
      const float inv = static_cast<float>(1.0 / m.std[c]);
      for (int k = 0; k < hw; ++k) p[k] *= inv;
    }
  return blob;
}

double cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
  return ab / std::sqrt(aa * bb);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [--no-bench]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const bool bench = !(argc > 2 && std::string(argv[2]) == "--no-bench");
  cv::setNumThreads(1);
  const Meta meta = read_meta(dir);

  std::map<std::string, cv::dnn::Net> nets;  // one per distinct file
  for (const auto& [size, file] : meta.files) {
    if (nets.count(file)) continue;
    cv::dnn::Net net = cv::dnn::readNetFromONNX(dir + "/" + file);
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    nets[file] = net;
    std::printf("%s: %zu layers; unconnected outputs:", file.c_str(), net.getLayerNames().size());
    for (const auto& s : net.getUnconnectedOutLayersNames()) std::printf(" '%s'", s.c_str());
    std::printf("; requested outputs:");
    for (const auto& s : meta.outputs) std::printf(" '%s' (layer id %d)", s.c_str(), net.getLayerId(s));
    std::printf("\n");
  }
  const int fi = 0, li = 1;  // index of "features" / "logits" in meta.outputs
  if (meta.outputs.size() != 2 || meta.outputs[fi] != "features" || meta.outputs[li] != "logits") {
    std::fprintf(stderr, "unexpected outputs in model.json\n");
    return 1;
  }

  cv::FileStorage ref(dir + "/reference/reference.json", cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
  if (!ref.isOpened()) {
    std::fprintf(stderr, "cannot open reference.json\n");
    return 1;
  }
  bool ok = true;
  double worst_cos = 1.0;
  std::map<int, std::vector<cv::Mat>> images_by_size;
  std::printf("\n%-16s %6s %6s %9s %10s %12s %14s\n", "image", "torch", "ocv", "ocv p", "max|d|", "max|d|/max", "cosine");
  for (const auto& e : ref["entries"]) {
    const std::string png = (std::string)e["png"];
    const int size = (int)e["size"];
    std::vector<float> tf;
    for (const auto& v : e["features"]) tf.push_back((float)(double)v);
    const int torch_top1 = (int)e["top5_indices"][0];
    cv::Mat img = cv::imread(dir + "/reference/" + png, cv::IMREAD_COLOR);
    if (img.empty() || img.rows != size || img.cols != size) {
      std::fprintf(stderr, "bad image %s\n", png.c_str());
      return 1;
    }
    images_by_size[size].push_back(img);
    cv::dnn::Net& net = nets[meta.files.at(size)];
    net.setInput(make_blob({img}, meta), meta.input_name);
    std::vector<cv::Mat> outs;
    net.forward(outs, meta.outputs);  // both outputs in one forward pass
    const cv::Mat feats = outs[fi].reshape(1, 1), logits = outs[li].reshape(1, 1);
    if ((int)feats.total() != (int)tf.size() || logits.total() != 1000) {
      std::fprintf(stderr, "%s: output sizes %zu/%zu\n", png.c_str(), feats.total(), logits.total());
      return 1;
    }
    cv::Point top;
    double lmax;
    cv::minMaxLoc(logits, nullptr, &lmax, nullptr, &top);
    double z = 0;
    for (int i = 0; i < 1000; ++i) z += std::exp(logits.at<float>(i) - lmax);
    double maxd = 0, fmax = 0;
    for (size_t i = 0; i < tf.size(); ++i) {
      maxd = std::max(maxd, (double)std::fabs(feats.at<float>((int)i) - tf[i]));
      fmax = std::max(fmax, (double)std::fabs(tf[i]));
    }
    const double cs = cosine(feats.ptr<float>(), tf.data(), (int)tf.size());
    worst_cos = std::min(worst_cos, cs);
    if (top.x != torch_top1 || cs < 0.999) ok = false;
    std::printf("%-16s %6d %6d %9.4f %10.2e %12.2e %13.9f %9.1e%s\n", png.c_str(), torch_top1, top.x, 1.0 / z,
                maxd, maxd / fmax, cs, 1.0 - cs, (top.x != torch_top1 || cs < 0.999) ? "  FAIL" : "");
  }

  // Batch consistency: a batch of 16 (the reference images repeated) vs single forwards.
  std::printf("\nbatch-16 vs batch-1 (same file, same size):\n");
  for (int size : meta.sizes) {
    cv::dnn::Net& net = nets[meta.files.at(size)];
    const auto& imgs = images_by_size[size];
    std::vector<cv::Mat> batch;
    for (int i = 0; i < 16; ++i) batch.push_back(imgs[i % imgs.size()]);
    net.setInput(make_blob(batch, meta), meta.input_name);
    std::vector<cv::Mat> bout;
    net.forward(bout, meta.outputs);
    double maxd = 0;
    for (size_t k = 0; k < imgs.size(); ++k) {
      net.setInput(make_blob({imgs[k]}, meta), meta.input_name);
      std::vector<cv::Mat> sout;
      net.forward(sout, meta.outputs);
      for (int i = (int)k; i < 16; i += (int)imgs.size())
        for (int o = 0; o < 2; ++o) {
          cv::Mat a = bout[o].row(i), b = sout[o].reshape(1, 1);
          maxd = std::max(maxd, cv::norm(a, b, cv::NORM_INF));
        }
    }
    std::printf("  %d: output shapes [%d x %d] and [%d x %d], max |batch - single| = %.2e\n", size,
                bout[fi].size[0], bout[fi].size[1], bout[li].size[0], bout[li].size[1], maxd);
    if (bout[fi].size[0] != 16 || bout[fi].size[1] != 1280 || maxd > 1e-3) ok = false;
  }

  if (bench) {
    std::printf("\nspeed, cv::setNumThreads(1), forward of both outputs (blob prep excluded):\n");
    for (int size : meta.sizes) {
      cv::dnn::Net& net = nets[meta.files.at(size)];
      const cv::Mat one = make_blob({images_by_size[size][0]}, meta);
      std::vector<cv::Mat> b16;
      for (int i = 0; i < 16; ++i) b16.push_back(images_by_size[size][i % images_by_size[size].size()]);
      const cv::Mat sixteen = make_blob(b16, meta);
      std::vector<cv::Mat> outs;
      net.setInput(one, meta.input_name);
      net.forward(outs, meta.outputs);  // warm-up (shape change reallocates)
      double t0 = now_s();
      for (int i = 0; i < 100; ++i) {
        net.setInput(one, meta.input_name);
        net.forward(outs, meta.outputs);
      }
      const double t1 = now_s() - t0;
      net.setInput(sixteen, meta.input_name);
      net.forward(outs, meta.outputs);  // warm-up
      t0 = now_s();
      for (int i = 0; i < 10; ++i) {
        net.setInput(sixteen, meta.input_name);
        net.forward(outs, meta.outputs);
      }
      const double t16 = now_s() - t0;
      std::printf("  %d: batch 1: %6.2f ms/img %7.1f img/s   batch 16: %6.2f ms/img %7.1f img/s\n", size,
                  t1 * 1e3 / 100, 100 / t1, t16 * 1e3 / 160, 160 / t16);
    }
  }
  std::printf("\nworst cosine %.9f -> %s\n", worst_cos, ok ? "OK" : "FAIL");
  return ok ? 0 : 1;
}
