// Fixtures for the C++ tests: real images from Debian's openclipart-png (read-only), encoded and
// damaged in memory or in a temporary folder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

namespace vislint::testing {

using Bytes = std::vector<uint8_t>;

// Real clip-art images (colour with alpha; colour; grey + alpha).
extern const char* kLizardPng;
extern const char* kTuxPng;
extern const char* kArmadilloPng;

Bytes read_file(const std::string& path);
void write_file(const std::string& path, const Bytes& bytes);
// A real image as 8-bit BGR, alpha composited over white.
cv::Mat load_bgr(const std::string& path);
Bytes encode(const cv::Mat& image, const std::string& ext, std::vector<int> params = {});
// Inserts an EXIF APP1 segment with the given Orientation right after the JPEG SOI marker.
Bytes with_exif_orientation(const Bytes& jpeg, int orientation);
// Encodes a GIF (first frame = image, quantised to a 6x6x6 palette) with giflib.
Bytes encode_gif(const cv::Mat& bgr);
// n x d unit vectors (row-major) around `clusters` random unit centres plus noise of norm
// ~`noise`, fixed seed: a mixture, as embeddings are, not i.i.d. noise.
std::vector<float> clustered(int64_t n, int d, int clusters, float noise, uint64_t seed);
// A fresh empty folder under the system temp dir, removed by the caller (or left for debugging).
std::string temp_dir(const std::string& name);

} // namespace vislint::testing
