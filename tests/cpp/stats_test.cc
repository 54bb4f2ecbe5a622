#include <gtest/gtest.h>

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
