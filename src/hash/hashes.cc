#include "hash/hashes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <opencv2/imgproc.hpp>
#include <xxhash.h>

namespace vislint::hash {

std::string Hash128::hex() const {
    char buf[33];
    std::snprintf(buf, sizeof(buf), "%016llx%016llx", (unsigned long long)high, (unsigned long long)low);
    return buf;
}

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)v);
    return buf;
}

Hash128 content_hash(const uint8_t* data, size_t size) {
    XXH128_hash_t h = XXH3_128bits(data, size);
    return {h.high64, h.low64};
}

Hash128 pixel_hash(const cv::Mat& pixels) {
    XXH3_state_t* state = XXH3_createState();
    XXH3_128bits_reset(state);
    const int32_t header[4] = {pixels.cols, pixels.rows, pixels.channels(), int32_t(pixels.elemSize1())};
    XXH3_128bits_update(state, header, sizeof(header));
    const size_t row_bytes = size_t(pixels.cols) * pixels.elemSize();
    for (int y = 0; y < pixels.rows; ++y) XXH3_128bits_update(state, pixels.ptr(y), row_bytes);
    XXH128_hash_t h = XXH3_128bits_digest(state);
    XXH3_freeState(state);
    return {h.high64, h.low64};
}

namespace {

// The 32 x 32 INTER_AREA thumbnail both perceptual hashes start from.
cv::Mat thumb32(const cv::Mat& gray) {
    cv::Mat small;
    cv::resize(gray, small, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
    return small;
}

// Bit i (from bit 63 down) = coefficient i above the median of the 64.
uint64_t bits_over_median(const float (&low)[64]) {
    float sorted[64];
    std::copy(low, low + 64, sorted);
    std::nth_element(sorted, sorted + 32, sorted + 64);
    const float median = sorted[32];
    uint64_t bits = 0;
    for (int i = 0; i < 64; ++i) bits = (bits << 1) | (low[i] > median ? 1u : 0u);
    return bits;
}

uint64_t phash_of_thumb(const cv::Mat& small) {
    cv::Mat f, coeffs;
    small.convertTo(f, CV_32F);
    cv::dct(f, coeffs);
    float low[64];
    for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) low[y * 8 + x] = coeffs.at<float>(y, x);
    return bits_over_median(low);
}

// INTER_AREA straight to 9 x 8 takes OpenCV's slow generic path (0.2 ms from 256 x 256, the
// largest per-image cost after the model input); from the 32 x 32 thumbnail it is 3 us, the
// same area average up to rounding. Small images (Fashion-MNIST's 28 px, their 2x copies) keep
// the direct path, where a thumbnail would first upsample.
bool dhash_via_thumb(const cv::Mat& gray) { return gray.cols >= 64 && gray.rows >= 64; }

uint64_t dhash_of(const cv::Mat& src) {
    cv::Mat small;
    cv::resize(src, small, cv::Size(9, 8), 0, 0, cv::INTER_AREA);
    uint64_t bits = 0;
    for (int y = 0; y < 8; ++y) {
        const uchar* p = small.ptr<uchar>(y);
        for (int x = 0; x < 8; ++x) bits = (bits << 1) | (p[x] > p[x + 1] ? 1u : 0u);
    }
    return bits;
}

// pHash of a 32 x 32 thumbnail from its 8 x 8 lowest DCT coefficients only, L = C X C^T with C
// the first 8 rows of the orthonormal 32-point DCT-II (cv::dct's scaling): 10 k multiply-adds
// where the full transform costs ~4x more. Equal to phash_of_thumb up to float rounding (a
// coefficient within rounding of the median can flip its bit).
uint64_t phash_low(const cv::Mat& small) {
    static const auto kBasis = [] {
        std::vector<float> c(8 * 32);
        for (int k = 0; k < 8; ++k)
            for (int n = 0; n < 32; ++n)
                c[k * 32 + n] = float((k == 0 ? std::sqrt(1.0 / 32) : std::sqrt(2.0 / 32)) *
                                      std::cos(M_PI * (2 * n + 1) * k / 64.0));
        return c;
    }();
    float rows[32][8]; // X C^T
    for (int y = 0; y < 32; ++y) {
        const uchar* p = small.ptr<uchar>(y);
        for (int k = 0; k < 8; ++k) {
            const float* c = &kBasis[k * 32];
            float s = 0;
            for (int x = 0; x < 32; ++x) s += c[x] * float(p[x]);
            rows[y][k] = s;
        }
    }
    float low[64];
    for (int k = 0; k < 8; ++k)
        for (int j = 0; j < 8; ++j) {
            const float* c = &kBasis[k * 32];
            float s = 0;
            for (int y = 0; y < 32; ++y) s += c[y] * rows[y][j];
            low[k * 8 + j] = s;
        }
    return bits_over_median(low);
}

struct View {
    const char* name;
    double crop;  // side kept, as a fraction; 1 = all
    double angle; // degrees, counter-clockwise
    bool mirror;
};
constexpr View kViews[kVariantCount] = {
    {"mirror image", 1, 0, true},        {"80 % centre crop", 0.8, 0, false},
    {"85 % centre crop", 0.85, 0, false}, {"90 % centre crop", 0.9, 0, false},
    {"5 degree rotation", 1, 5, false},   {"-5 degree rotation", 1, -5, false},
    {"10 degree rotation", 1, 10, false}, {"-10 degree rotation", 1, -10, false},
};

} // namespace

VariantHashes variant_hashes(const cv::Mat& gray) {
    // Views are cut from a 64 x 64 thumbnail: bilinear to 128 (from the <= 256 px working image
    // it reads every pixel: 13 us, where INTER_AREA's generic path takes 57), then an exact 2x
    // area step. Rotations remap through fixed-point maps made once (warpAffine recomputes them
    // each call: 27 us a view at 64 x 64, against ~5); at 32 x 32 instead, 7 degree rotations of
    // clip art were found 3-6 times fewer in 120 (bench/near_dups.py).
    constexpr int kSide = 64;
    static const std::vector<std::pair<cv::Mat, cv::Mat>> kRotations = [] {
        std::vector<std::pair<cv::Mat, cv::Mat>> maps(kVariantCount);
        for (int i = 0; i < kVariantCount; ++i) {
            if (kViews[i].angle == 0) continue;
            const cv::Mat m = cv::getRotationMatrix2D(cv::Point2f((kSide - 1) / 2.0f, (kSide - 1) / 2.0f),
                                                      kViews[i].angle, 1.0);
            cv::Mat inv, mx(kSide, kSide, CV_32FC1), my(kSide, kSide, CV_32FC1);
            cv::invertAffineTransform(m, inv);
            for (int y = 0; y < kSide; ++y)
                for (int x = 0; x < kSide; ++x) {
                    mx.at<float>(y, x) = float(inv.at<double>(0, 0) * x + inv.at<double>(0, 1) * y + inv.at<double>(0, 2));
                    my.at<float>(y, x) = float(inv.at<double>(1, 0) * x + inv.at<double>(1, 1) * y + inv.at<double>(1, 2));
                }
            cv::convertMaps(mx, my, maps[i].first, maps[i].second, CV_16SC2);
        }
        return maps;
    }();
    cv::Mat half, thumb;
    const bool bilinear = gray.cols >= 2 * kSide && gray.rows >= 2 * kSide && gray.cols <= 4 * kSide && gray.rows <= 4 * kSide;
    cv::resize(gray, half, cv::Size(2 * kSide, 2 * kSide), 0, 0, bilinear ? cv::INTER_LINEAR : cv::INTER_AREA);
    cv::resize(half, thumb, cv::Size(kSide, kSide), 0, 0, cv::INTER_AREA);
    VariantHashes out;
    for (int i = 0; i < kVariantCount; ++i) {
        const View& v = kViews[i];
        cv::Mat view, small;
        if (v.mirror) {
            cv::flip(thumb, view, 1);
        } else if (v.angle != 0) {
            cv::remap(thumb, view, kRotations[i].first, kRotations[i].second, cv::INTER_LINEAR, cv::BORDER_REPLICATE);
        } else {
            const int side = int(std::lround(kSide * v.crop)), off = (kSide - side) / 2;
            view = thumb(cv::Rect(off, off, side, side));
        }
        cv::resize(view, small, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
        out.views[i] = {phash_low(small), dhash_of(small)};
    }
    return out;
}

const char* variant_name(int i) { return i >= 0 && i < kVariantCount ? kViews[i].name : "view"; }

int variant_match(const VariantHashes& a, const PerceptualHashes& b, int radius, int dhash_radius, int* distance) {
    for (int i = 0; i < kVariantCount; ++i) {
        const int d = hamming(a.views[i].phash, b.phash);
        if (d <= radius && hamming(a.views[i].dhash, b.dhash) <= dhash_radius) {
            if (distance) *distance = d;
            return i;
        }
    }
    return -1;
}

uint64_t phash(const cv::Mat& gray) { return phash_of_thumb(thumb32(gray)); }

uint64_t dhash(const cv::Mat& gray) { return dhash_of(dhash_via_thumb(gray) ? thumb32(gray) : gray); }

PerceptualHashes perceptual_hashes(const cv::Mat& gray) {
    const cv::Mat small = thumb32(gray);
    return {phash_of_thumb(small), dhash_of(dhash_via_thumb(gray) ? small : gray)};
}

} // namespace vislint::hash
