// Findings that need labels or splits: label issues (kNN vote) and train/val/test leaks.
// This is where "why is this label called wrong" and "why is this a leak" are answered.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/duplicates.h"
#include "graph/similarity.h"

namespace vislint::graph {

struct LabelVote {
    size_t position;
    int given = -1;      // class index
    int suggested = -1;  // the vote's winner (== given when the vote agrees)
    double score = 0;    // confidence that the given label is wrong: 1 - p(given), 0..1
    std::vector<size_t> voters; // positions of the labelled neighbours that voted
};

// Two-round similarity-weighted kNN vote. Round 1 gives every item a distribution over classes
// from its neighbours' given labels (weights w = max(sim, 0)). Round 2 scores each labelled item
// i by p_i(c) = sum_j w_ij q_j(c) / sum_j w_ij, where q_j is neighbour j's round-1 distribution
// with i's own vote removed. score = 1 - p_i(given). `labels` holds a class index per position
// (-1 = unlabelled). Returns one vote per labelled position with at least one labelled
// neighbour, in position order.
std::vector<LabelVote> vote_labels(const Neighbours& nn, const std::vector<int>& labels, int n_classes);

struct Leak {
    int64_t a = 0, b = 0; // image ids: a in the later split, b its match in an earlier split
    double score = 1.0;   // similarity of the pair (1 = identical)
    double threshold = 1.0;
    std::string detail;
};

// A leak is a duplicate pair across splits. For each image and each earlier split (train before
// val before test, then other names alphabetically) it reports the duplicate in that split with
// the strongest evidence (evidence_margin: rules score on different scales): exact groups count every member pair, near duplicates their pairs. `split_of`
// holds the split per image id (indexed by id; "" = none, never a leak).
std::vector<Leak> find_leaks(const ExactResult& exact, const NearResult& near,
                             const std::vector<std::string>& split_of);

// Orders split names: train, val, test first, then the rest alphabetically.
bool split_before(const std::string& a, const std::string& b);

} // namespace vislint::graph
