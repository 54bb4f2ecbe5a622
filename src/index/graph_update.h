// Keeping a saved kNN graph current when vectors are added to its index and others retired,
// instead of recomputing every row (issue 12: a re-scan with a few new images must cost time
// roughly proportional to them).
//
// Positions are never renumbered: a retired position (its image deleted, or re-analysed and
// added again at a new position) keeps its vector in the index and is skipped wherever it is
// found, so the ids of the rows that stay are unchanged. The scan rebuilds from scratch once
// the retired and added positions pass a fraction of the built ones (pipeline/scan_knn.cc).
//
// What the update gives, against a self_graph() of the same index:
//   - rows of added positions: the index's own search, the same as self_graph() gives them;
//   - rows of kept positions that held a retired one: searched again, the same;
//   - other kept rows: an added vector enters a row when it beats the row's k-th neighbour and
//     the row's position is among the added vector's own best 8k + 1 (the candidates its
//     search returns). kNN is not symmetric, so an added vector can belong to a row without
//     that row being in its 8k + 1 (an isolated vector whose k-th neighbour is far): that row
//     keeps its old k-th neighbour. tests/cpp/graph_update_test.cc measures it: 4,000 noisy
//     clustered vectors, 5 % added and 2 % retired, recall@10 against brute force 0.9919 with
//     2k + 1 candidates, 0.9977 with 4k + 1 and 0.998 (that of searching every row afresh) with
//     8k + 1, the width used.
#pragma once

#include <cstdint>
#include <vector>

#include "index/knn_index.h"

namespace vislint::index {

struct GraphUpdateStats {
    int64_t added = 0;      // rows of added positions
    int64_t researched = 0; // kept rows searched again (they held a retired position)
    int64_t entered = 0;    // kept rows an added vector entered
};

// `graph` holds the rows of positions 0 .. graph->n - 1, the index the vectors of those and of
// the added positions graph->n .. idx.size() - 1. live[p] (size idx.size()) is false for retired
// positions. `rows` gives vectors by position (retired ones may give anything of the right size).
// Grows `graph` to idx.size() rows; rows of retired positions are left padded (-1 / -inf).
// REQUIRES: graph->n <= idx.size(), live.size() == idx.size(), graph->k >= 1.
GraphUpdateStats update_graph(const KnnIndex& idx, const RowSource& rows,
                              const std::vector<bool>& live, KnnGraph* graph,
                              const ProgressFn& progress = {});

} // namespace vislint::index
