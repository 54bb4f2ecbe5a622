#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <tuple>
#include <functional>
#include <map>

#include <opencv2/imgproc.hpp>

#include "graph/duplicates.h"
#include "hash/hamming_index.h"
#include "hash/hashes.h"
#include "hash/small_copy.h"
#include "io/decode.h"
#include "quality/stats.h"
#include "test_util.h"

namespace vislint {
namespace {

uint64_t phash_of(const cv::Mat& bgr) { return hash::phash(quality::to_gray(bgr)); }

cv::Mat roundtrip_jpeg(const cv::Mat& img, int quality) {
    testing::Bytes b = testing::encode(img, ".jpg", {cv::IMWRITE_JPEG_QUALITY, quality});
    io::DecodedImage d;
    io::DecodeOptions opt;
    opt.working_side = 1 << 20;
    EXPECT_TRUE(io::decode_image(b.data(), b.size(), opt, &d).ok());
    return io::working_image(d, 1 << 20);
}

TEST(Hash, ContentHashIsOfBytes) {
    testing::Bytes a = testing::read_file(testing::kLizardPng), b = a;
    EXPECT_TRUE(hash::content_hash(a.data(), a.size()) == hash::content_hash(b.data(), b.size()));
    b.back() ^= 1;
    EXPECT_FALSE(hash::content_hash(a.data(), a.size()) == hash::content_hash(b.data(), b.size()));
    EXPECT_EQ(hash::content_hash(a.data(), a.size()).hex().size(), 32u);
}

TEST(Hash, PixelHashIgnoresEncoding) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng);
    auto decode = [](const testing::Bytes& b) {
        io::DecodedImage d;
        EXPECT_TRUE(io::decode_image(b.data(), b.size(), {}, &d).ok());
        return hash::pixel_hash(d.pixels);
    };
    testing::Bytes png = testing::encode(img, ".png", {cv::IMWRITE_PNG_COMPRESSION, 1});
    testing::Bytes png9 = testing::encode(img, ".png", {cv::IMWRITE_PNG_COMPRESSION, 9});
    testing::Bytes bmp = testing::encode(img, ".bmp");
    EXPECT_NE(png, png9);
    EXPECT_TRUE(decode(png) == decode(png9));
    EXPECT_TRUE(decode(png) == decode(bmp));
    cv::Mat changed = img.clone();
    changed.at<cv::Vec3b>(3, 3)[0] ^= 1;
    EXPECT_FALSE(decode(png) == decode(testing::encode(changed, ".png")));
}

TEST(Hash, PerceptualHashesSurviveMildTransformsOnly) {
    cv::Mat img = testing::load_bgr(testing::kLizardPng), half, other = testing::load_bgr(testing::kTuxPng);
    cv::resize(img, half, cv::Size(), 0.5, 0.5, cv::INTER_AREA);
    const uint64_t h = phash_of(img);
    EXPECT_LE(hash::hamming(h, phash_of(roundtrip_jpeg(half, 40))), 6);
    EXPECT_LE(hash::hamming(h, phash_of(roundtrip_jpeg(img, 15))), 8);
    EXPECT_GT(hash::hamming(h, phash_of(other)), 16);
    EXPECT_LE(hash::hamming(hash::dhash(quality::to_gray(img)), hash::dhash(quality::to_gray(half))), 8);
    cv::Mat flipped;
    cv::flip(img, flipped, 1);
    EXPECT_GT(hash::hamming(h, phash_of(flipped)), 10); // pHash is not flip-invariant
}

// The working image the scan hashes (grey, longer side <= 256).
cv::Mat working_grey(const cv::Mat& bgr) {
    cv::Mat g = quality::to_gray(bgr);
    const double f = 256.0 / std::max(g.cols, g.rows);
    if (f < 1) cv::resize(g, g, cv::Size(), f, f, cv::INTER_AREA);
    return g;
}

TEST(VariantHashes, TransformedCopiesHashLikeAViewOfTheirOriginal) {
    const cv::Mat img = testing::load_bgr(testing::kLizardPng);
    const hash::VariantHashes views = hash::variant_hashes(working_grey(img));
    auto match = [&](const cv::Mat& copy) {
        const hash::PerceptualHashes h = hash::perceptual_hashes(working_grey(copy));
        int d = -1;
        return std::string(hash::variant_name(hash::variant_match(views, h, 10, 8, &d)));
    };
    cv::Mat mirrored, crop, rotated;
    cv::flip(img, mirrored, 1);
    const int cw = int(img.cols * 0.85), ch = int(img.rows * 0.85);
    img(cv::Rect((img.cols - cw) / 2, (img.rows - ch) / 2, cw, ch)).copyTo(crop);
    const cv::Mat m = cv::getRotationMatrix2D(cv::Point2f(img.cols / 2.0f, img.rows / 2.0f), 7, 1.0);
    cv::warpAffine(img, rotated, m, img.size(), cv::INTER_CUBIC, cv::BORDER_CONSTANT, cv::Scalar::all(255));
    EXPECT_EQ(match(mirrored), "mirror image");
    EXPECT_NE(match(crop).find("centre crop"), std::string::npos) << match(crop);
    EXPECT_NE(match(rotated).find("rotation"), std::string::npos) << match(rotated);
    // The copies' own hashes are far from the original's (why the views are needed)...
    const hash::PerceptualHashes orig = hash::perceptual_hashes(working_grey(img));
    EXPECT_GT(hash::hamming(orig.phash, hash::perceptual_hashes(working_grey(mirrored)).phash), 10);
    // ... and other pictures match no view.
    EXPECT_EQ(hash::variant_match(views, hash::perceptual_hashes(working_grey(testing::load_bgr(testing::kTuxPng))), 10, 8, nullptr), -1);
    EXPECT_EQ(hash::variant_match(views, hash::perceptual_hashes(working_grey(testing::load_bgr(testing::kArmadilloPng))), 10, 8, nullptr), -1);
}

// A real image as a small grey item (28 x 28, Fashion-MNIST's size).
cv::Mat small_grey(const char* path, int side = 28) {
    cv::Mat g = quality::to_gray(testing::load_bgr(path)), out;
    cv::resize(g, out, cv::Size(side, side), 0, 0, cv::INTER_AREA);
    return out;
}

TEST(SmallCopy, OnlySmallImagesKeepTheirPixels) {
    const cv::Mat item = small_grey(testing::kTuxPng);
    const hash::SmallThumb t = hash::small_thumb(item);
    ASSERT_EQ(t.width, 28);
    ASSERT_EQ(t.height, 28);
    EXPECT_EQ(0, std::memcmp(t.pixels.data(), item.data, item.total()));
    EXPECT_FALSE(hash::small_thumb(small_grey(testing::kTuxPng, 64)).empty());
    EXPECT_TRUE(hash::small_thumb(small_grey(testing::kTuxPng, 65)).empty());
}

TEST(SmallCopy, CopiesCorrelateAndOtherItemsDoNot) {
    const cv::Mat item = small_grey(testing::kTuxPng);
    const hash::SmallThumb t = hash::small_thumb(item);
    auto corr = [&](const cv::Mat& other) { return hash::small_copy_correlation(t, hash::small_thumb(other)); };
    EXPECT_DOUBLE_EQ(corr(item), 1.0);
    cv::Mat shifted = cv::Mat::zeros(item.size(), item.type()), mirrored, brighter, upscaled, jpeg;
    item(cv::Rect(0, 0, 27, 28)).copyTo(shifted(cv::Rect(1, 0, 27, 28)));
    cv::flip(item, mirrored, 1);
    item.convertTo(brighter, -1, 1.0, 25.0); // saturates at 255
    cv::resize(item, upscaled, cv::Size(56, 56), 0, 0, cv::INTER_LINEAR);
    jpeg = quality::to_gray(roundtrip_jpeg(item, 80));
    EXPECT_GE(corr(shifted), 0.99);
    EXPECT_GE(corr(mirrored), 0.99);
    EXPECT_GE(corr(brighter), 0.99);
    EXPECT_GE(corr(upscaled), 0.99);
    EXPECT_GE(corr(jpeg), 0.97);
    // Symmetric in its arguments' sizes: the larger is resized to the smaller.
    EXPECT_NEAR(corr(upscaled), hash::small_copy_correlation(hash::small_thumb(upscaled), t), 1e-9);
    // Other pictures, and the same one shifted by 3 px, are no copies.
    EXPECT_LT(corr(small_grey(testing::kLizardPng)), 0.9);
    EXPECT_LT(corr(small_grey(testing::kArmadilloPng)), 0.9);
    cv::Mat far = cv::Mat::zeros(item.size(), item.type());
    item(cv::Rect(0, 0, 25, 28)).copyTo(far(cv::Rect(3, 0, 25, 28)));
    EXPECT_LT(corr(far), corr(shifted));
    // A flat image has nothing to compare: 0, also against itself.
    const cv::Mat flat(28, 28, CV_8UC1, cv::Scalar(128));
    EXPECT_EQ(hash::small_copy_correlation(hash::small_thumb(flat), hash::small_thumb(flat)), 0.0);
    EXPECT_EQ(corr(flat), 0.0);
}

TEST(Hash, PerceptualHashesFromOneThumbnailMatchTheSingleOnes) {
    // Large images take dHash through the 32 x 32 thumbnail; its bits must stay those of a
    // direct area resize to 9 x 8 except where two neighbours are within rounding of each other.
    for (const char* path : {testing::kLizardPng, testing::kTuxPng}) {
        for (double scale : {1.0, 0.3, 0.1}) {
            cv::Mat img = testing::load_bgr(path), sized, direct;
            cv::resize(img, sized, cv::Size(), scale, scale, cv::INTER_AREA);
            const cv::Mat gray = quality::to_gray(sized);
            const hash::PerceptualHashes both = hash::perceptual_hashes(gray);
            EXPECT_EQ(both.phash, hash::phash(gray)) << path << " x" << scale;
            EXPECT_EQ(both.dhash, hash::dhash(gray)) << path << " x" << scale;
            cv::resize(gray, direct, cv::Size(9, 8), 0, 0, cv::INTER_AREA);
            int unsure = 0; // neighbour pairs whose order rounding may flip
            uint64_t bits = 0;
            for (int y = 0; y < 8; ++y)
                for (int x = 0; x < 8; ++x) {
                    bits = (bits << 1) | (direct.at<uchar>(y, x) > direct.at<uchar>(y, x + 1) ? 1u : 0u);
                    unsure += std::abs(int(direct.at<uchar>(y, x)) - int(direct.at<uchar>(y, x + 1))) <= 2;
                }
            EXPECT_LE(hash::hamming(both.dhash, bits), unsure) << path << " x" << scale;
            if (gray.cols < 64 || gray.rows < 64) EXPECT_EQ(both.dhash, bits) << path << " x" << scale;
        }
    }
}

TEST(HammingIndex, MatchesBruteForceOnClusteredCodes) {
    std::mt19937_64 rng(7);
    std::vector<uint64_t> codes;
    for (int c = 0; c < 300; ++c) {
        uint64_t centre = rng();
        int members = 1 + int(rng() % 6);
        for (int k = 0; k < members; ++k) {
            uint64_t v = centre;
            int flips = int(rng() % 14);
            for (int f = 0; f < flips; ++f) v ^= 1ull << (rng() % 64);
            codes.push_back(v);
        }
    }
    codes.push_back(codes[0]); // identical codes
    codes.push_back(codes[0]);
    const size_t n = codes.size();
    auto components = [n](const std::vector<hash::CodePair>& pairs) {
        std::vector<size_t> parent(n);
        for (size_t i = 0; i < n; ++i) parent[i] = i;
        std::function<size_t(size_t)> find = [&](size_t x) { return parent[x] == x ? x : parent[x] = find(parent[x]); };
        for (const auto& p : pairs) parent[find(p.a)] = find(p.b);
        std::vector<size_t> label(n);
        std::map<size_t, size_t> first;
        for (size_t i = 0; i < n; ++i) label[i] = first.emplace(find(i), i).first->second;
        return label;
    };
    for (int radius : {0, 1, 3, 6, 10, 12}) {
        auto fast = hash::pairs_within_radius(codes, radius, 1000, 2);
        auto slow = hash::pairs_within_radius_brute(codes, radius);
        // Identical codes are linked to their first occurrence only, so the fast result is a
        // subset of all pairs with exactly the same connected components.
        std::set<std::tuple<uint32_t, uint32_t, int>> all;
        for (auto& p : slow) all.insert({p.a, p.b, p.distance});
        for (auto& p : fast) EXPECT_TRUE(all.count({p.a, p.b, p.distance})) << "radius " << radius;
        EXPECT_EQ(components(fast), components(slow)) << "radius " << radius;
        EXPECT_GT(fast.size(), radius >= 6 ? 100u : 0u);
    }
}

// Codes in clusters (a few bit flips around random centres) with runs of identical codes.
std::vector<uint64_t> clustered_codes(uint64_t seed, int clusters) {
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> codes;
    for (int c = 0; c < clusters; ++c) {
        const uint64_t centre = rng();
        const int members = 1 + int(rng() % 6);
        for (int k = 0; k < members; ++k) {
            uint64_t v = centre;
            const int flips = int(rng() % 10);
            for (int f = 0; f < flips; ++f) v ^= 1ull << (rng() % 64);
            codes.push_back(v);
            if (rng() % 8 == 0) codes.push_back(v); // identical code
        }
    }
    return codes;
}

TEST(HammingIndex, QueriedCodesGetTheFullSearchsPairs) {
    const std::vector<uint64_t> codes = clustered_codes(11, 400);
    std::mt19937_64 rng(3);
    for (int radius : {0, 4, 8, 10}) {
        const auto full = hash::pairs_within_radius(codes, radius, 1000, 2);
        std::vector<uint32_t> queries;
        for (uint32_t i = 0; i < codes.size(); ++i)
            if (rng() % 10 == 0) queries.push_back(i);
        std::vector<uint32_t> members;
        const auto got = hash::pairs_of_queries(codes, queries, radius, 1000, 2, &members);
        // Every query and every index sharing its code is a member.
        std::set<uint32_t> mem(members.begin(), members.end());
        for (uint32_t q : queries) EXPECT_TRUE(mem.count(q));
        for (uint32_t i = 0; i < codes.size(); ++i)
            for (uint32_t q : queries)
                if (codes[i] == codes[q]) {
                    EXPECT_TRUE(mem.count(i)) << i;
                }
        std::set<std::tuple<uint32_t, uint32_t, int>> want, have;
        for (const auto& p : full)
            if (mem.count(p.a) || mem.count(p.b)) want.insert({p.a, p.b, p.distance});
        for (const auto& p : got) have.insert({p.a, p.b, p.distance});
        EXPECT_EQ(have.size(), got.size()) << "each pair once, radius " << radius;
        EXPECT_EQ(have, want) << "radius " << radius;
        EXPECT_GT(want.size(), radius >= 4 ? 20u : 0u);
    }
}

TEST(HashPairs, UpdatedPairsEqualAFreshSearch) {
    // Items by id; a scan later removes some, changes some (new hash, not derived) and adds some.
    const std::vector<uint64_t> codes = clustered_codes(5, 500);
    std::vector<graph::DupItem> before;
    for (size_t i = 0; i + 200 < codes.size(); ++i) {
        graph::DupItem it;
        it.id = int64_t(i);
        it.phash = codes[i];
        it.dhash = std::mt19937_64(i)(); // random: about half the pairs pass the dHash radius
        it.hashable = i % 37 != 0;
        before.push_back(it);
    }
    const int radius = 8;
    const auto first = graph::update_hash_pairs(before, radius, 32, 2, nullptr);
    ASSERT_GT(first.pairs.size(), 100u);
    std::mt19937_64 rng(9);
    std::vector<graph::DupItem> after;
    for (auto it : before) {
        const uint64_t r = rng() % 100;
        if (r < 3) continue; // removed
        it.derived = true;
        if (r < 6) { // re-analysed with another content
            it.phash = codes[size_t(rng() % codes.size())];
            it.dhash = rng();
            it.derived = false;
        }
        after.push_back(it);
    }
    for (size_t i = codes.size() - 200; i < codes.size(); ++i) { // added, larger ids
        graph::DupItem it;
        it.id = int64_t(i);
        it.phash = codes[i];
        it.dhash = std::mt19937_64(i)();
        after.push_back(it);
    }
    const auto updated = graph::update_hash_pairs(after, radius, 32, 2, &first.pairs);
    const auto fresh = graph::update_hash_pairs(after, radius, 32, 2, nullptr);
    EXPECT_EQ(updated.pairs, fresh.pairs);
    EXPECT_LT(updated.searched, after.size() / 2);
    // The delta turns the saved pairs into the new ones.
    std::set<std::tuple<int64_t, int64_t, int>> s;
    for (const auto& p : first.pairs) s.insert({p.a, p.b, p.distance});
    for (const auto& p : updated.dropped) EXPECT_EQ(s.erase({p.a, p.b, p.distance}), 1u);
    for (const auto& p : updated.added) EXPECT_TRUE(s.insert({p.a, p.b, p.distance}).second);
    std::set<std::tuple<int64_t, int64_t, int>> f;
    for (const auto& p : fresh.pairs) f.insert({p.a, p.b, p.distance});
    EXPECT_EQ(s, f);
}

} // namespace
} // namespace vislint
