// Quality flags: the rule for each single-image issue type and the score it reports.
//
// Every score is "higher = stronger evidence" and is reported with the threshold it was
// compared against, on the same scale (docs/workdir.md lists them):
//   dark             score = 255 - brightness_p99      flagged when brightness_p99 < dark
//   bright           score = brightness_p01            flagged when brightness_p01 > bright
// (percentiles, not the mean: a black logo on white paper is not "bright", a night shot with one
// street lamp is still "dark")
//   blurry           sharpness = blur / max(contrast^2, 1) (variance of the Laplacian relative
//                    to the grey-level variance, so darkening or fading an image does not make
//                    it "blurry"); score = 1 - sharpness / (sharpness + blurry), flagged when
//                    sharpness < blurry (score > 0.5)
//   low_information  score = 8 - entropy               flagged when entropy < low_information
//   grayscale        score = 1 - colour_fraction       flagged when colour_fraction < limit
//   odd_aspect_ratio score = max(w/h, h/w)             flagged when score > odd_aspect_ratio
//   odd_size         score = max(s/m, m/s) with s = sqrt(w*h), m = the dataset's median s;
//                    flagged when score > odd_size_ratio or the shorter side < min_side
#pragma once

#include <string>
#include <vector>

#include "quality/stats.h"
#include "vislint/options.h"

namespace vislint::quality {

struct ImageFacts {
    int width = 0, height = 0, channels = 0;
    ImageStats stats;
};

struct Flag {
    std::string type;
    double score;
    double threshold;
    std::string detail;
};

// The quality flags of one image. `median_area` is the dataset's median width x height.
std::vector<Flag> quality_flags(const ImageFacts& image, const Thresholds& t, double median_area);

// Variance of the Laplacian relative to the grey-level variance.
double sharpness(const ImageStats& s);

// True when the image is grayscale (one channel, or almost no colourful pixels).
bool is_grayscale(const ImageFacts& image, const Thresholds& t);

} // namespace vislint::quality
