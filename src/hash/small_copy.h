// Pixel-level copy check for small images (icons, Fashion-MNIST-sized items), where embeddings
// and perceptual hashes pair look-alike products as readily as copies.
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

namespace vislint::hash {

// Images whose longer side is at most this many pixels keep their grey pixels for the check
// (at most 4 KB each). Kept at native size: resampling a 28 px item to a common 32 px blurs
// both sides and lost 32 of 40 planted 2x upscales of Fashion-MNIST items at 0.99.
constexpr int kSmallImageSide = 64;
inline bool is_small_image(int64_t width, int64_t height) {
    return width > 0 && height > 0 && width <= kSmallImageSide && height <= kSmallImageSide;
}

struct SmallThumb {
    int width = 0, height = 0;
    std::vector<uint8_t> pixels; // width x height grey levels, row-major; empty = none
    bool empty() const { return pixels.empty(); }
};

// The grey image itself when its longer side is at most kSmallImageSide, else an empty one.
// REQUIRES: gray is CV_8UC1.
SmallThumb small_thumb(const cv::Mat& gray);

// How alike two small images are pixel for pixel, 0..1: both are resized to the smaller width
// and height (INTER_AREA), then the largest Pearson correlation of their grey levels on the
// overlap, over shifts of up to one pixel either way and over b's mirror image. Copies,
// re-encodes, brightness changes, 1-px shifts and mirror images score >= 0.99; different products
// of one kind (two sneakers) score lower. Negative correlations and windows without variance (no
// content to compare) count as 0. REQUIRES: neither is empty.
double small_copy_correlation(const SmallThumb& a, const SmallThumb& b);

} // namespace vislint::hash
