#include "store/features.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <opencv2/core.hpp>

#include "vislint/status.h"

namespace vislint::store {
namespace {

constexpr size_t kHeaderSize = 128;

std::string header(int64_t rows, int dim) {
    std::string dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                       ", " + std::to_string(dim) + "), }";
    std::string h = "\x93NUMPY";
    h += char(1);
    h += char(0);
    const size_t len = kHeaderSize - 10;
    h += char(len & 0xFF);
    h += char(len >> 8);
    dict.resize(len - 1, ' ');
    return h + dict + "\n";
}

std::pair<int64_t, int> parse_shape(FILE* f) {
    char buf[kHeaderSize + 1] = {0};
    if (std::fseek(f, 0, SEEK_SET) != 0 || std::fread(buf, 1, kHeaderSize, f) != kHeaderSize) return {0, 0};
    if (std::memcmp(buf, "\x93NUMPY", 6) != 0) return {0, 0};
    const char* dict = buf + 10; // after magic, version and header length (which contain NULs)
    if (std::strstr(dict, "'<f2'") == nullptr) return {0, 0};
    const char* shape = std::strstr(dict, "'shape': (");
    if (!shape) return {0, 0};
    long long rows = 0;
    int dim = 0;
    if (std::sscanf(shape, "'shape': (%lld, %d)", &rows, &dim) != 2) return {0, 0};
    return {rows, dim};
}

} // namespace

FeatureFile::FeatureFile(const std::string& path, int dim, bool reset) : path_(path), dim_(dim) {
    if (!reset) {
        f_ = std::fopen(path.c_str(), "r+b");
        if (f_ && parse_shape(f_).second != dim) {
            std::fclose(f_);
            f_ = nullptr;
        }
    }
    if (!f_) {
        f_ = std::fopen(path.c_str(), "w+b");
        if (!f_) throw Error("cannot write " + path + ": " + std::strerror(errno));
        std::string h = header(0, dim);
        std::fwrite(h.data(), 1, h.size(), f_);
    }
}

FeatureFile::~FeatureFile() {
    if (f_) std::fclose(f_);
}

void FeatureFile::write_row(int64_t id, const float* values) {
    cv::Mat src(1, dim_, CV_32F, const_cast<float*>(values)), half;
    src.convertTo(half, CV_16F);
    const long off = long(kHeaderSize + size_t(id) * dim_ * 2);
    if (std::fseek(f_, off, SEEK_SET) != 0 || std::fwrite(half.data, 2, size_t(dim_), f_) != size_t(dim_))
        throw Error("cannot write " + path_ + ": " + std::strerror(errno));
}

void FeatureFile::zero_row(int64_t id) {
    std::vector<float> zeros(size_t(dim_), 0.f);
    write_row(id, zeros.data());
}

void FeatureFile::close(int64_t rows) {
    std::string h = header(rows, dim_);
    std::fseek(f_, 0, SEEK_SET);
    std::fwrite(h.data(), 1, h.size(), f_);
    std::fflush(f_);
    const off_t size = off_t(kHeaderSize + size_t(rows) * dim_ * 2);
    if (::ftruncate(fileno(f_), size) != 0) throw Error("cannot resize " + path_);
    std::fclose(f_);
    f_ = nullptr;
}

std::pair<int64_t, int> feature_file_shape(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return {0, 0};
    auto s = parse_shape(f);
    std::fclose(f);
    return s;
}

std::vector<float> read_feature_rows(const std::string& path, const std::vector<int64_t>& ids, int* dim) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error("cannot read " + path + ": " + std::strerror(errno));
    auto [rows, d] = parse_shape(f);
    if (d <= 0) {
        std::fclose(f);
        throw Error(path + " is not a float16 features file");
    }
    *dim = d;
    std::vector<float> out(ids.size() * size_t(d));
    cv::Mat half(1, d, CV_16F);
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= rows) {
            std::fclose(f);
            throw Error(path + " has no row " + std::to_string(ids[i]));
        }
        std::fseek(f, long(kHeaderSize + size_t(ids[i]) * d * 2), SEEK_SET);
        if (std::fread(half.data, 2, size_t(d), f) != size_t(d)) {
            std::fclose(f);
            throw Error(path + " is truncated");
        }
        cv::Mat dst(1, d, CV_32F, out.data() + i * d);
        half.convertTo(dst, CV_32F);
    }
    std::fclose(f);
    return out;
}

} // namespace vislint::store
