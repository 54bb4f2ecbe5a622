#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "io/decode.h"
#include "io/formats.h"
#include "test_util.h"

namespace vislint {
namespace {

using testing::Bytes;

io::DecodedImage decode_ok(const Bytes& b, int working_side = 256) {
    io::DecodedImage d;
    io::DecodeOptions opt;
    opt.working_side = working_side;
    ImageStatus s = io::decode_image(b.data(), b.size(), opt, &d);
    EXPECT_TRUE(s.ok()) << s.to_string();
    return d;
}

ImageStatus decode_status(const Bytes& b, int64_t max_pixels = 100'000'000) {
    io::DecodedImage d;
    io::DecodeOptions opt;
    opt.max_pixels = max_pixels;
    return io::decode_image(b.data(), b.size(), opt, &d);
}

TEST(Decode, RealPngKeepsAlphaAndSize) {
    Bytes png = testing::read_file(testing::kTuxPng);
    io::DecodedImage d = decode_ok(png);
    EXPECT_EQ(d.format, io::Format::kPng);
    EXPECT_EQ(d.width, 794);
    EXPECT_EQ(d.height, 1123);
    EXPECT_EQ(d.channels, 4);
    EXPECT_EQ(d.pixels.channels(), 4);
    // Transparent background reads as white paper after compositing.
    cv::Mat work = io::working_image(d, 256);
    EXPECT_EQ(std::max(work.cols, work.rows), 256);
    EXPECT_EQ(work.at<cv::Vec3b>(0, 0), cv::Vec3b(255, 255, 255));
}

TEST(Decode, GrayAlphaPngBecomesFourChannels) {
    io::DecodedImage d = decode_ok(testing::read_file(testing::kArmadilloPng));
    EXPECT_EQ(d.width, 422);
    EXPECT_EQ(d.height, 209);
    EXPECT_EQ(d.pixels.channels(), 4);
}

TEST(Decode, JpegUsesDctScalingButReportsFullSize) {
    cv::Mat big;
    cv::resize(testing::load_bgr(testing::kTuxPng), big, cv::Size(1588, 2246));
    Bytes jpg = testing::encode(big, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 90});
    io::DecodedImage d = decode_ok(jpg, 256);
    EXPECT_EQ(d.format, io::Format::kJpeg);
    EXPECT_EQ(d.width, 1588);
    EXPECT_EQ(d.height, 2246);
    // 2246 / 8 = 281 >= 256: the 1/8 scale suffices.
    EXPECT_EQ(d.pixels.rows, 281);
    EXPECT_EQ(d.pixels.cols, 199);
    // With a larger working size the decoder picks a larger scale.
    io::DecodedImage d2 = decode_ok(jpg, 600);
    EXPECT_GE(std::max(d2.pixels.cols, d2.pixels.rows), 600);
    EXPECT_LT(std::max(d2.pixels.cols, d2.pixels.rows), 2246);
}

TEST(Decode, JpegExifOrientationIsApplied) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng);
    cv::resize(img, img, cv::Size(300, 200));
    Bytes plain = testing::encode(img, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
    io::DecodedImage upright = decode_ok(plain, 1024);
    io::DecodedImage rotated = decode_ok(testing::with_exif_orientation(plain, 6), 1024);
    EXPECT_EQ(rotated.orientation, 6);
    EXPECT_EQ(rotated.width, 200);
    EXPECT_EQ(rotated.height, 300);
    cv::Mat expected;
    cv::rotate(upright.pixels, expected, cv::ROTATE_90_CLOCKWISE);
    EXPECT_EQ(cv::norm(expected, rotated.pixels, cv::NORM_INF), 0.0);
}

TEST(Decode, SixteenBitPngIsScaledToEightBits) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng), img16;
    img.convertTo(img16, CV_16UC3, 257.0);
    io::DecodedImage d = decode_ok(testing::encode(img16, ".png"));
    EXPECT_EQ(d.bit_depth, 16);
    EXPECT_EQ(d.pixels.depth(), CV_8U);
    EXPECT_LE(cv::norm(img, d.pixels, cv::NORM_INF), 1.0);
}

TEST(Decode, GrayscaleJpegStaysOneChannel) {
    cv::Mat gray;
    cv::cvtColor(testing::load_bgr(testing::kLizardPng), gray, cv::COLOR_BGR2GRAY);
    io::DecodedImage d = decode_ok(testing::encode(gray, ".jpg"));
    EXPECT_EQ(d.channels, 1);
}

TEST(Decode, OtherFormatsRoundTrip) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng);
    struct Case { const char* ext; io::Format format; };
    for (Case c : {Case{".bmp", io::Format::kBmp}, Case{".tiff", io::Format::kTiff},
                   Case{".webp", io::Format::kWebp}, Case{".ppm", io::Format::kPnm}}) {
        Bytes b = testing::encode(img, c.ext);
        EXPECT_EQ(io::sniff_format(b.data(), b.size()), c.format) << c.ext;
        io::Dimensions dims = io::read_dimensions(c.format, b.data(), b.size());
        EXPECT_TRUE(dims.known) << c.ext;
        EXPECT_EQ(dims.width, img.cols) << c.ext;
        EXPECT_EQ(dims.height, img.rows) << c.ext;
        io::DecodedImage d = decode_ok(b);
        EXPECT_EQ(d.format, c.format) << c.ext;
        EXPECT_EQ(d.width, img.cols) << c.ext;
        EXPECT_EQ(d.height, img.rows) << c.ext;
    }
}

TEST(Decode, GifFirstFrame) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng);
    Bytes gif = testing::encode_gif(img);
    io::DecodedImage d = decode_ok(gif);
    EXPECT_EQ(d.format, io::Format::kGif);
    EXPECT_EQ(d.width, img.cols);
    EXPECT_EQ(d.height, img.rows);
    // Palette quantisation moves each channel by at most 25 levels.
    EXPECT_LE(cv::norm(img, d.pixels, cv::NORM_INF), 26.0);
}

TEST(Broken, EachKindHasItsReason) {
    Bytes png = testing::read_file(testing::kLizardPng);
    Bytes jpg = testing::encode(testing::load_bgr(testing::kLizardPng), ".jpg");

    EXPECT_EQ(decode_status({}).code, StatusCode::kEmpty);

    Bytes cut_jpg(jpg.begin(), jpg.begin() + jpg.size() * 4 / 10);
    EXPECT_EQ(decode_status(cut_jpg).code, StatusCode::kTruncated);

    Bytes cut_png(png.begin(), png.begin() + png.size() / 2);
    ImageStatus s = decode_status(cut_png);
    EXPECT_EQ(s.code, StatusCode::kTruncated) << s.to_string();

    std::string text = "hello, I am a text file with a .jpg name\n";
    s = decode_status(Bytes(text.begin(), text.end()));
    EXPECT_EQ(s.code, StatusCode::kUnsupported);
    EXPECT_NE(s.message.find("68 65 6c 6c"), std::string::npos) << s.message; // "hell"

    // Garbage inside IDAT: structure intact (IEND present), data unusable.
    Bytes bad = png;
    size_t idat = std::string(bad.begin(), bad.end()).find("IDAT");
    ASSERT_NE(idat, std::string::npos);
    for (size_t i = idat + 8; i < idat + 400 && i < bad.size(); ++i) bad[i] = uint8_t(i * 131);
    s = decode_status(bad);
    EXPECT_EQ(s.code, StatusCode::kCorrupt) << s.to_string();
}

TEST(Broken, PixelLimitRefusesBeforeDecoding) {
    Bytes png = testing::read_file(testing::kLizardPng);
    // Claim 60000 x 60000 in IHDR: refused from the header alone.
    Bytes bomb = png;
    const uint8_t big[8] = {0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60};
    std::copy(big, big + 8, bomb.begin() + 16);
    ImageStatus s = decode_status(bomb);
    EXPECT_EQ(s.code, StatusCode::kTooLarge);
    EXPECT_NE(s.message.find("60000x60000"), std::string::npos) << s.message;

    Bytes jpg = testing::encode(testing::load_bgr(testing::kLizardPng), ".jpg");
    EXPECT_EQ(decode_status(jpg, 1000).code, StatusCode::kTooLarge);
    EXPECT_TRUE(decode_status(jpg).ok());
}

TEST(Formats, ExtensionVersusContent) {
    EXPECT_EQ(io::format_from_extension("a/b/photo.JPG"), io::Format::kJpeg);
    EXPECT_EQ(io::format_from_extension("x.tif"), io::Format::kTiff);
    EXPECT_EQ(io::format_from_extension("dir.png/readme"), io::Format::kUnknown);
    Bytes jpg = testing::encode(testing::load_bgr(testing::kLizardPng), ".jpg");
    EXPECT_EQ(io::sniff_format(jpg.data(), jpg.size()), io::Format::kJpeg);
}

} // namespace
} // namespace vislint
