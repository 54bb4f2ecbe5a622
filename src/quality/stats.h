// Per-image statistics, computed on the working image (8-bit BGR, longer side <= 256 px) so that
// values are comparable across resolutions.
#pragma once

#include <opencv2/core.hpp>

namespace vislint::quality {

struct ImageStats {
    double brightness = 0;  // mean grey level, 0..255
    double brightness_p01 = 0; // 1st percentile grey level: high when even the darkest parts are light
    double brightness_p99 = 0; // 99th percentile grey level: low when even the lightest parts are dark
    double contrast = 0;    // standard deviation of grey levels
    double blur = 0;        // variance of the Laplacian of the grey image (low = blurry)
    double entropy = 0;     // Shannon entropy of the 256-bin grey histogram, bits (0..8)
    double saturation = 0;  // mean HSV saturation, 0..1
    double colour_fraction = 0; // share of pixels with chroma > max(4, 10 % of value)
};

// REQUIRES: bgr is CV_8UC3 and not empty.
ImageStats compute_stats(const cv::Mat& bgr);
// The same, given gray == to_gray(bgr) (the scan computes it once for stats and hashes).
ImageStats compute_stats(const cv::Mat& bgr, const cv::Mat& gray);

// Grey version of the working image, as used by stats and perceptual hashes.
cv::Mat to_gray(const cv::Mat& bgr);

} // namespace vislint::quality
