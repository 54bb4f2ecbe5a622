// All pairs of 64-bit codes within a Hamming radius, without comparing every pair.
//
// Multi-index hashing (Norouzi, Punjani, Fleet, CVPR 2012): the 64 bits are cut into m chunks.
// If two codes differ in at most r bits, then by the pigeonhole principle at least one chunk
// differs in at most floor(r / m) bits. Each chunk has a sorted (chunk value, code) table;
// a query enumerates the few chunk values within floor(r / m) of its own and looks each up by
// binary search, then verifies the full distance. m is chosen per call to minimise the expected
// number of lookups and candidates, so the cost per query stays roughly constant as N grows
// (about N / 2^(64/m) candidates per lookup for well-spread codes).
//
// Identical codes are collapsed first: a set of k identical codes yields k - 1 pairs (each to
// the first), not k(k-1)/2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vislint::hash {

struct CodePair {
    uint32_t a, b;   // indices into the codes vector, a < b
    int distance;
};

// REQUIRES: radius in [0, 32]. `max_per_code` bounds the pairs kept per distinct code (closest
// first), so a dataset made of thousands of near-identical images stays linear in size.
// Runs on `threads` threads. Pairs come out sorted by (a, b).
std::vector<CodePair> pairs_within_radius(const std::vector<uint64_t>& codes, int radius,
                                          size_t max_per_code, int threads);

// The pairs pairs_within_radius gives for the distinct codes of `queries` (indices into
// `codes`): what a re-scan needs for its new and changed images, while the pairs of the other
// codes are kept from before. For each queried code: a pair from its representative (smallest
// index with that code) to each other index with the code, and pairs from it to the
// representatives of the other codes within `radius` -- each pair once, at most `max_per_code`
// of the latter per queried code, closest first. pairs_within_radius caps a code's pairs to
// larger codes instead, so the two can differ only where a code has more than the cap of other
// codes within the radius. `members` (may be nullptr) receives every index whose code was
// queried, ascending: all their pairs are among the returned ones. Sorted by (a, b), a < b.
std::vector<CodePair> pairs_of_queries(const std::vector<uint64_t>& codes,
                                       const std::vector<uint32_t>& queries, int radius,
                                       size_t max_per_code, int threads,
                                       std::vector<uint32_t>* members = nullptr);

// Brute force O(N^2) reference, for tests.
std::vector<CodePair> pairs_within_radius_brute(const std::vector<uint64_t>& codes, int radius);

} // namespace vislint::hash
