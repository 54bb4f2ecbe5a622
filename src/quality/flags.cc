#include "quality/flags.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace vislint::quality {
namespace {

std::string fmt(const char* f, double a, double b) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), f, a, b);
    return buf;
}

} // namespace

double sharpness(const ImageStats& s) { return s.blur / std::max(s.contrast * s.contrast, 1.0); }

bool is_grayscale(const ImageFacts& im, const Thresholds& t) {
    return im.channels == 1 || im.stats.colour_fraction < t.grayscale_colour_fraction;
}

std::vector<Flag> quality_flags(const ImageFacts& im, const Thresholds& t, double median_area) {
    std::vector<Flag> out;
    const ImageStats& s = im.stats;
    if (s.brightness_p99 < t.dark)
        out.push_back({"dark", 255.0 - s.brightness_p99, 255.0 - t.dark,
                       fmt("99%% of pixels darker than %.0f (threshold %.0f)", s.brightness_p99, t.dark)});
    if (s.brightness_p01 > t.bright)
        out.push_back({"bright", s.brightness_p01, t.bright,
                       fmt("99%% of pixels brighter than %.0f (threshold %.0f)", s.brightness_p01, t.bright)});
    // A flat image has no edges at all; it is reported as low_information, not as blurry.
    bool flat = s.entropy < t.low_information;
    const double sharp = sharpness(s);
    if (sharp < t.blurry && !flat)
        out.push_back({"blurry", 1.0 - sharp / (sharp + t.blurry), 0.5,
                       fmt("relative sharpness %.4f < %.4f", sharp, t.blurry)});
    if (flat)
        out.push_back({"low_information", 8.0 - s.entropy, 8.0 - t.low_information,
                       fmt("entropy %.2f bits < %.2f", s.entropy, t.low_information)});
    if (is_grayscale(im, t)) {
        std::string why = im.channels == 1
                              ? "stored with one channel"
                              : fmt("%.2f%% colourful pixels < %.2f%%", 100 * s.colour_fraction,
                                    100 * t.grayscale_colour_fraction);
        out.push_back({"grayscale", 1.0 - s.colour_fraction, 1.0 - t.grayscale_colour_fraction, why});
    }
    if (im.width > 0 && im.height > 0) {
        double ar = std::max(double(im.width) / im.height, double(im.height) / im.width);
        if (ar > t.odd_aspect_ratio)
            out.push_back({"odd_aspect_ratio", ar, t.odd_aspect_ratio,
                           fmt("aspect ratio %.2f > %.2f", ar, t.odd_aspect_ratio)});
        double area = double(im.width) * im.height;
        double ratio = median_area > 0 ? std::sqrt(std::max(area / median_area, median_area / area)) : 1.0;
        int shorter = std::min(im.width, im.height);
        if (ratio > t.odd_size_ratio || shorter < t.odd_size_min_side) {
            char buf[200];
            std::snprintf(buf, sizeof(buf), "%dx%d; side %.1fx %s the median (%.0f px area)%s", im.width,
                          im.height, ratio, area < median_area ? "below" : "above", median_area,
                          shorter < t.odd_size_min_side ? "; shorter side below the minimum" : "");
            out.push_back({"odd_size", ratio, t.odd_size_ratio, buf});
        }
    }
    return out;
}

} // namespace vislint::quality
