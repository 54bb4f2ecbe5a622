// Exact and hash-based near duplicates, and their groups.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hash/hashes.h"

namespace vislint::graph {

struct DupItem {
    int64_t id = 0;          // image id (ascending = discovery order)
    hash::Hash128 file_hash; // xxh3-128 of the bytes
    hash::Hash128 pixel_hash;
    uint64_t phash = 0, dhash = 0;
    bool hashable = true;    // false for flat images, whose perceptual hash means nothing
    int64_t width = 0, height = 0, file_size = 0;
};

struct DupPair {
    int64_t a = 0, b = 0; // image ids; for exact rows `b` is the group's keeper
    double score = 1.0;   // similarity, 1 = identical
    int distance = 0;     // pHash Hamming distance (near pairs)
    std::string detail;
    double threshold = 1.0; // the score this pair had to reach (its rule's threshold)
};

// How far a pair's score lies above its rule's threshold, 0..1 whatever the rule's scale
// (cosine similarity, 1 - pHash distance / 64, or 1 for identical content).
inline double evidence_margin(double score, double threshold) {
    return threshold >= 1.0 ? 1.0 : (score - threshold) / (1.0 - threshold);
}

struct DupGroup {
    std::string kind;            // "exact" or "near"
    std::vector<int64_t> members; // ascending ids
    int64_t keeper = 0;
};

struct ExactResult {
    std::vector<DupPair> pairs; // one per non-keeper member: (member, keeper)
    std::vector<DupGroup> groups;
};

// Groups images with identical bytes or identical decoded pixels. The keeper of an exact group
// is its first discovered image (identical content: any copy will do).
ExactResult find_exact(const std::vector<DupItem>& items);

struct NearResult {
    std::vector<DupPair> pairs; // a < b, never two members of the same exact group
    std::vector<DupGroup> groups;
};

// Pairs of hashable images whose pHashes differ in at most `radius` bits and whose dHashes
// differ in at most `dhash_radius` bits (two hashes of different kinds agree far more rarely by
// chance than one: on clip art, pHash alone within 10 bits pairs many unrelated flags and
// icons), and their connected
// components (exact copies join their group). Keeper: largest resolution, then the most central
// member (largest sum of evidence_margin over its pairs), then largest file, then first
// discovered.
NearResult find_near_by_hash(const std::vector<DupItem>& items, const ExactResult& exact,
                             int radius, int dhash_radius, int threads);

// Groups candidate near pairs (indices into `items`, a < b): drops pairs inside one exact group,
// links exact copies into their group, picks keepers. Used by the hash and embedding paths.
struct IndexPair {
    size_t a, b;
    double score;
    std::string detail;
    double threshold; // on the score's scale
};
NearResult group_near_pairs(const std::vector<DupItem>& items, const ExactResult& exact,
                            const std::vector<IndexPair>& pairs);

// The candidate pairs of find_near_by_hash (indices into `items`), before grouping.
std::vector<IndexPair> hash_pairs(const std::vector<DupItem>& items, int radius, int dhash_radius,
                                  int threads);

} // namespace vislint::graph
