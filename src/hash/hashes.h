// Content hashes (exact duplicates) and perceptual hashes (near duplicates without a model).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace vislint::hash {

struct Hash128 {
    uint64_t high = 0, low = 0;
    std::string hex() const; // 32 lowercase hex digits
    bool operator==(const Hash128& o) const { return high == o.high && low == o.low; }
};

// xxh3-128 of the file's bytes.
Hash128 content_hash(const uint8_t* data, size_t size);

// xxh3-128 of decoded 8-bit pixels (size, channel count and rows, without row padding), so two
// files that decode to the same pixels hash alike whatever their encoding.
Hash128 pixel_hash(const cv::Mat& pixels);

// 64-bit DCT perceptual hash: grey image resized to 32x32 (INTER_AREA), 2-D DCT, the 8x8
// lowest frequencies compared to their median; bit 63 = coefficient (0,0), row-major.
// REQUIRES: gray is CV_8UC1 and not empty.
uint64_t phash(const cv::Mat& gray);

// 64-bit difference hash: grey image resized to 9x8 (INTER_AREA; via 32x32 when both sides are
// >= 64), bit = left pixel brighter than right.
uint64_t dhash(const cv::Mat& gray);

// Both of the above from one 32x32 resize (what the scan uses).
struct PerceptualHashes {
    uint64_t phash = 0;
    uint64_t dhash = 0;
};
PerceptualHashes perceptual_hashes(const cv::Mat& gray);

inline int hamming(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

// The perceptual hashes of transformed views of an image: its mirror image, centre crops of 80,
// 85 and 90 % and rotations by +-5 and +-10 degrees (from a 64 x 64 thumbnail; rotations
// replicate the border). A copy that was mirrored, cropped or rotated hashes like one
// of its original's views (pHash tolerates about 2-3 degrees and a few % of scale), which the
// whole-image hashes and the embedding miss: on clip art an 85 % crop sits at cosine 0.62-0.96
// to its original, a 7 degree rotation at 0.31-0.97.
constexpr int kVariantCount = 8;
struct VariantHashes {
    PerceptualHashes views[kVariantCount];
};
VariantHashes variant_hashes(const cv::Mat& gray); // REQUIRES: CV_8UC1, not empty
// What view i is, for issue details ("mirror image", "85 % centre crop", "5 degree rotation").
const char* variant_name(int i);
// The first view of `a` whose pHash is within `radius` of b's and dHash within `dhash_radius`,
// -1 when none is; `*distance` gets its pHash distance.
int variant_match(const VariantHashes& a, const PerceptualHashes& b, int radius, int dhash_radius, int* distance);

std::string hex64(uint64_t v);

} // namespace vislint::hash
