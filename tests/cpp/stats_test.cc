#include <gtest/gtest.h>

#include <cmath>

#include <opencv2/imgproc.hpp>

#include "quality/flags.h"
#include "quality/stats.h"
#include "test_util.h"

namespace vislint {
namespace {

bool has_flag(const std::vector<quality::Flag>& flags, const std::string& type) {
    for (const auto& f : flags)
        if (f.type == type) return true;
    return false;
}

struct Measured {
    quality::ImageFacts facts;
    std::vector<quality::Flag> flags;
};

Measured measure(const cv::Mat& bgr, int channels = 3) {
    cv::Mat work = bgr;
    if (std::max(bgr.cols, bgr.rows) > 256) {
        double s = 256.0 / std::max(bgr.cols, bgr.rows);
        cv::resize(bgr, work, cv::Size(), s, s, cv::INTER_AREA);
    }
    Measured m;
    m.facts = {bgr.cols, bgr.rows, channels, quality::compute_stats(work)};
    m.flags = quality::quality_flags(m.facts, Thresholds{}, double(bgr.cols) * bgr.rows);
    return m;
}

TEST(Stats, RealImageHasNoQualityFlags) {
    Measured m = measure(testing::load_bgr(testing::kLizardPng));
    EXPECT_GT(m.facts.stats.entropy, Thresholds{}.low_information);
    EXPECT_GT(m.facts.stats.colour_fraction, Thresholds{}.grayscale_colour_fraction);
    EXPECT_GT(m.facts.stats.saturation, 0.0);
    EXPECT_FALSE(has_flag(m.flags, "dark"));
    EXPECT_FALSE(has_flag(m.flags, "blurry"));
    EXPECT_FALSE(has_flag(m.flags, "grayscale"));
}

TEST(Stats, MatchOpenCvReferenceComputations) {
    // compute_stats sums the Laplacian and the histogram itself (for speed): the values must be
    // OpenCV's meanStdDev variance and calcHist percentiles / entropy.
    for (const char* path : {testing::kLizardPng, testing::kTuxPng}) {
        const cv::Mat img = testing::load_bgr(path), gray = quality::to_gray(img);
        const quality::ImageStats s = quality::compute_stats(img), t = quality::compute_stats(img, gray);
        cv::Mat lap, hist;
        cv::Laplacian(gray, lap, CV_16S);
        cv::Scalar mean, sd;
        cv::meanStdDev(lap, mean, sd);
        EXPECT_NEAR(s.blur, sd[0] * sd[0], 1e-6 * sd[0] * sd[0]) << path;
        const int channel = 0, bins = 256;
        const float range[] = {0, 256};
        const float* ranges[] = {range};
        cv::calcHist(&gray, 1, &channel, cv::Mat(), hist, 1, &bins, ranges);
        double entropy = 0, cum = 0;
        int p01 = -1, p99 = -1;
        for (int v = 0; v < 256; ++v) {
            const double c = hist.at<float>(v), q = c / double(gray.total());
            if (c > 0) entropy -= q * std::log2(q);
            cum += c;
            if (p01 < 0 && cum >= 0.01 * double(gray.total())) p01 = v;
            if (p99 < 0 && cum >= 0.99 * double(gray.total())) p99 = v;
        }
        EXPECT_NEAR(s.entropy, entropy, 1e-9) << path;
        EXPECT_EQ(s.brightness_p01, p01) << path;
        EXPECT_EQ(s.brightness_p99, p99) << path;
        EXPECT_EQ(s.blur, t.blur);
        EXPECT_EQ(s.entropy, t.entropy);
        EXPECT_EQ(s.saturation, t.saturation);
    }
}

TEST(Stats, DarkVariantIsDark) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng), dark;
    img.convertTo(dark, -1, 0.12);
    Measured a = measure(img), b = measure(dark);
    EXPECT_LT(b.facts.stats.brightness, a.facts.stats.brightness * 0.2);
    EXPECT_TRUE(has_flag(b.flags, "dark"));
    for (const auto& f : b.flags)
        if (f.type == "dark") EXPECT_GT(f.score, f.threshold);
}

TEST(Stats, BrightVariantIsBright) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng), bright;
    img.convertTo(bright, -1, 0.15, 0.85 * 255);
    EXPECT_TRUE(has_flag(measure(bright).flags, "bright"));
    EXPECT_FALSE(has_flag(measure(img).flags, "bright"));
}

TEST(Stats, BlurredVariantIsBlurry) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng), blurred;
    cv::GaussianBlur(img, blurred, cv::Size(0, 0), 6);
    Measured a = measure(img), b = measure(blurred);
    EXPECT_LT(b.facts.stats.blur, a.facts.stats.blur / 10);
    EXPECT_TRUE(has_flag(b.flags, "blurry"));
    EXPECT_FALSE(has_flag(a.flags, "blurry"));
}

TEST(Stats, UniformImageIsLowInformationNotBlurry) {
    Measured m = measure(cv::Mat(200, 300, CV_8UC3, cv::Scalar(40, 120, 200)));
    EXPECT_DOUBLE_EQ(m.facts.stats.entropy, 0.0);
    EXPECT_TRUE(has_flag(m.flags, "low_information"));
    EXPECT_FALSE(has_flag(m.flags, "blurry"));
}

TEST(Stats, GrayscaleAndGeometryFlags) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng), gray, gray3;
    cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
    cv::cvtColor(gray, gray3, cv::COLOR_GRAY2BGR);
    EXPECT_TRUE(has_flag(measure(gray3).flags, "grayscale"));
    cv::Mat strip = img(cv::Rect(0, 0, img.cols, img.cols / 6));
    EXPECT_TRUE(has_flag(measure(strip).flags, "odd_aspect_ratio"));
    // A tiny image among large ones.
    quality::ImageFacts tiny{20, 20, 3, measure(img).facts.stats};
    EXPECT_TRUE(has_flag(quality::quality_flags(tiny, Thresholds{}, 500.0 * 400.0), "odd_size"));
    quality::ImageFacts normal{480, 400, 3, tiny.stats};
    EXPECT_FALSE(has_flag(quality::quality_flags(normal, Thresholds{}, 500.0 * 400.0), "odd_size"));
}

} // namespace
} // namespace vislint
