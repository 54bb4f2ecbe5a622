// Scoring issue rows against a ground truth: precision, recall and F1 per issue type.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vislint/results.h"

namespace vislint::graph {

// One finding by item name: `other` is empty for a single-image type.
struct Finding {
    std::string type;
    std::string item, other;
};

// Scores `predicted` against `truth`, one entry per type present in either:
// - single-image types: sets of items (`other` is ignored: outlier and label_issue rows carry a
//   neighbour there);
// - leak: sets of unordered pairs;
// - duplicates: exact_duplicate and near_duplicate pairs are closed transitively into groups on
//   each side and compared as the unordered pairs of items sharing a group ("duplicate": both
//   kinds together; "exact_duplicate": exact pairs alone). predicted / truth / matched count
//   such pairs, from the groups' contingency table (never enumerated).
std::map<std::string, TypeScore> score_findings(const std::vector<Finding>& predicted,
                                          const std::vector<Finding>& truth);

} // namespace vislint::graph
