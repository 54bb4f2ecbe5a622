#include "hash/hashes.h"

#include <algorithm>
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

uint64_t phash_of_thumb(const cv::Mat& small) {
    cv::Mat f, coeffs;
    small.convertTo(f, CV_32F);
    cv::dct(f, coeffs);
    float low[64];
    for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) low[y * 8 + x] = coeffs.at<float>(y, x);
    float sorted[64];
    std::copy(low, low + 64, sorted);
    std::nth_element(sorted, sorted + 32, sorted + 64);
    const float median = sorted[32];
    uint64_t bits = 0;
    for (int i = 0; i < 64; ++i) bits = (bits << 1) | (low[i] > median ? 1u : 0u);
    return bits;
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

} // namespace

uint64_t phash(const cv::Mat& gray) { return phash_of_thumb(thumb32(gray)); }

uint64_t dhash(const cv::Mat& gray) { return dhash_of(dhash_via_thumb(gray) ? thumb32(gray) : gray); }

PerceptualHashes perceptual_hashes(const cv::Mat& gray) {
    const cv::Mat small = thumb32(gray);
    return {phash_of_thumb(small), dhash_of(dhash_via_thumb(gray) ? small : gray)};
}

} // namespace vislint::hash
