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

// Brute force O(N^2) reference, for tests.
std::vector<CodePair> pairs_within_radius_brute(const std::vector<uint64_t>& codes, int radius);

} // namespace vislint::hash
