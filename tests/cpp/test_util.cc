#include "test_util.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include <gif_lib.h>
#include <opencv2/imgcodecs.hpp>

#include "io/decode.h"

namespace fs = std::filesystem;

namespace vislint::testing {

const char* kLizardPng = "/usr/share/openclipart/png/animals/az-lizard_benji_park_01.png";
const char* kTuxPng = "/usr/share/openclipart/png/animals/baby-tux_alex_kuehne_01.png";
const char* kArmadilloPng = "/usr/share/openclipart/png/animals/armadillo_architetto_fra_01.png";

Bytes read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read fixture " + path + " (is openclipart-png installed? run make setup)");
    return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

cv::Mat load_bgr(const std::string& path) {
    Bytes b = read_file(path);
    io::DecodedImage d;
    io::DecodeOptions opt;
    opt.working_side = 1 << 20; // full size
    if (!io::decode_image(b.data(), b.size(), opt, &d).ok()) throw std::runtime_error("bad fixture " + path);
    return io::working_image(d, 1 << 20);
}

Bytes encode(const cv::Mat& image, const std::string& ext, std::vector<int> params) {
    std::vector<uchar> buf;
    if (!cv::imencode(ext, image, buf, params)) throw std::runtime_error("imencode " + ext);
    return Bytes(buf.begin(), buf.end());
}

Bytes with_exif_orientation(const Bytes& jpeg, int orientation) {
    // APP1: "Exif\0\0" + little-endian TIFF header + IFD0 with one entry (0x0112 SHORT).
    Bytes tiff = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
                  uint8_t(orientation), 0, 0, 0, 0, 0, 0, 0};
    Bytes seg = {'E', 'x', 'i', 'f', 0, 0};
    seg.insert(seg.end(), tiff.begin(), tiff.end());
    size_t len = seg.size() + 2;
    Bytes out = {jpeg[0], jpeg[1], 0xFF, 0xE1, uint8_t(len >> 8), uint8_t(len & 0xFF)};
    out.insert(out.end(), seg.begin(), seg.end());
    out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
    return out;
}

namespace {
int gif_write(GifFileType* gif, const GifByteType* data, int n) {
    auto* out = static_cast<Bytes*>(gif->UserData);
    out->insert(out->end(), data, data + n);
    return n;
}
} // namespace

Bytes encode_gif(const cv::Mat& bgr) {
    Bytes out;
    int err = 0;
    GifFileType* gif = EGifOpen(&out, gif_write, &err);
    if (!gif) throw std::runtime_error("EGifOpen");
    GifColorType colors[256] = {};
    for (int i = 0; i < 216; ++i)
        colors[i] = {GifByteType((i / 36) * 51), GifByteType(((i / 6) % 6) * 51), GifByteType((i % 6) * 51)};
    ColorMapObject* cmap = GifMakeMapObject(256, colors);
    EGifPutScreenDesc(gif, bgr.cols, bgr.rows, 8, 0, cmap);
    EGifPutImageDesc(gif, 0, 0, bgr.cols, bgr.rows, false, nullptr);
    std::vector<GifPixelType> line(bgr.cols);
    for (int y = 0; y < bgr.rows; ++y) {
        for (int x = 0; x < bgr.cols; ++x) {
            cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
            int r = (p[2] + 25) / 51, g = (p[1] + 25) / 51, b = (p[0] + 25) / 51;
            line[x] = GifPixelType(r * 36 + g * 6 + b);
        }
        EGifPutLine(gif, line.data(), bgr.cols);
    }
    EGifCloseFile(gif, &err);
    GifFreeMapObject(cmap);
    return out;
}

std::string temp_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("vislint_test_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

std::vector<float> clustered(int64_t n, int d, int clusters, float noise, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g(0.f, 1.f);
    auto normalise = [d](float* v) {
        double s = 0;
        for (int j = 0; j < d; ++j) s += double(v[j]) * v[j];
        for (int j = 0; j < d; ++j) v[j] = float(v[j] / std::sqrt(s));
    };
    std::vector<float> centres(size_t(clusters) * d), x(size_t(n) * d);
    for (auto& c : centres) c = g(rng);
    for (int c = 0; c < clusters; ++c) normalise(centres.data() + c * d);
    const float sigma = noise / std::sqrt(float(d));
    for (int64_t i = 0; i < n; ++i) {
        const float* c = centres.data() + (rng() % clusters) * d;
        for (int j = 0; j < d; ++j) x[i * d + j] = c[j] + sigma * g(rng);
        normalise(x.data() + i * d);
    }
    return x;
}

} // namespace vislint::testing
