// Exact and hash-based near duplicates, and their groups.
#pragma once

#include <cstdint>
#include <functional>
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
    bool derived = false;    // unchanged since the last derivation (its saved pairs still hold)
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

// Groups candidate near pairs (indices into `items`, a < b) by star linkage: drops pairs inside
// one exact group and treats exact copies as one unit; then the most keeper-like unit not yet in
// a group (largest resolution, then the most central -- largest sum of evidence_margin over its
// pairs --, then largest file, then first discovered) takes every ungrouped unit it is paired
// with, and so on. Every member of a group is thus a near duplicate (or an exact copy of one) of
// its keeper; pairs whose two sides ended in other groups stay pairs. Used by the hash and
// embedding paths.
struct IndexPair {
    size_t a, b;
    double score;
    std::string detail;
    double threshold; // on the score's scale
};
NearResult group_near_pairs(const std::vector<DupItem>& items, const ExactResult& exact,
                            const std::vector<IndexPair>& pairs);

// A second test of a candidate near pair (positions in `items`): whether the two are copies, or
// that the test does not apply to them. `confirm`: the pair is a near duplicate only if the test
// finds a copy (otherwise it is one unless the test finds look-alikes). A copy may carry the
// evidence appended to its detail.
enum class Verdict { kNotApplicable, kCopy, kNotCopy };
using PairCheck = std::function<Verdict(IndexPair* pair, bool confirm)>;
// The pairs `check` does not find to be look-alikes (kNotCopy), in their order; all of them when
// it is empty.
std::vector<IndexPair> checked_pairs(std::vector<IndexPair> pairs, const PairCheck& check);

// pHash pairs by image id (a < b), kept in the work dir between scans so that a re-scan searches
// only for the pairs of its new and changed images.
struct HashPair {
    int64_t a = 0, b = 0;
    int distance = 0;
    bool operator==(const HashPair& o) const { return a == o.a && b == o.b && distance == o.distance; }
};
struct HashPairUpdate {
    std::vector<HashPair> pairs;   // all pairs now, sorted by (a, b)
    std::vector<HashPair> dropped; // of `saved`, those that no longer hold
    std::vector<HashPair> added;   // of `pairs`, those not in `saved`
    size_t searched = 0;           // items searched for pairs
};
// The pHash pairs within `radius` among the hashable `items` whose dHashes also agree within
// `dhash_radius` (two hashes of different kinds agree far more rarely by chance than one: on
// clip art, pHash alone within 10 bits pairs many unrelated flags and icons), and every pair of
// identical pHashes ( the links of a group of identical codes
// to its representative). With `saved` (the pairs of the last derivation at these radii): its
// pairs between two items that are still there, hashable and derived are kept, and only the
// other hashable items are searched against all hashable ones (hash::pairs_of_queries), plus
// the unchanged items that had a pair with one that changed or went. Without it, every pair is
// searched (hash::pairs_within_radius). The two agree on every pair except where a code has
// more than the cap (100) of partners within the radius, where which 100 are kept can differ;
// tests/cpp compares them.
HashPairUpdate update_hash_pairs(const std::vector<DupItem>& items, int radius, int dhash_radius,
                                 int threads, const std::vector<HashPair>* saved);

// Candidate near pairs (indices into `items`) of the pHash pairs whose dHashes also agree within
// `dhash_radius`; pairs with an image not in `items` are left out.
std::vector<IndexPair> hash_index_pairs(const std::vector<DupItem>& items,
                                        const std::vector<HashPair>& pairs, int radius,
                                        int dhash_radius);

} // namespace vislint::graph
