// Findings from the kNN graph of embeddings: near duplicates, clusters and outliers.
// This is where "why was this image called an outlier" is answered.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/duplicates.h"
#include "vislint/options.h"

namespace vislint::graph {

// n x k neighbour lists by position (positions index `items`), best first, -1 = none.
struct Neighbours {
    int64_t n = 0;
    int k = 0;
    const int64_t* ids = nullptr;
    const float* sims = nullptr;
};

struct Outlier {
    size_t position;
    double score;      // isolation: 1 - mean similarity to the nearest m neighbours
    double z;          // robust z-score: (score - median) / (1.4826 * MAD)
    int64_t nearest;   // position of the nearest neighbour, -1 if none
    float nearest_sim;
};

struct SimilarityResult {
    NearResult near;
    std::vector<std::vector<int64_t>> clusters; // image ids, largest cluster first
    std::vector<Outlier> isolation;             // every position, in position order
    double outlier_threshold = 0;               // isolation score above which an image is flagged
    std::vector<size_t> outliers;               // flagged positions, most isolated first
};

// Near duplicates: kNN edges with similarity >= t.near_duplicate (exact copies excluded).
// Clusters: connected components of edges >= t.cluster, size >= 2.
// Outliers: isolation = 1 - mean similarity to the m = min(k, 5) nearest neighbours; flagged when
// its robust z-score exceeds t.outlier_z (median / MAD are robust to the outliers themselves).
// `extra_pairs` (positions in `items`, e.g. perceptual-hash matches) join the near duplicates:
// hashes catch what embeddings miss (text overlays) and the reverse (crops, flips, rotations).
// With `check`, a candidate it finds a look-alike (kNotCopy) is no near duplicate, and the kNN
// edges from min(t.copy_candidate, t.near_duplicate) up to t.near_duplicate are candidates too,
// kept only where it finds a copy (kCopy): a JPEG-80 copy of a 28 px item can sit at cosine
// 0.89, a 7 degree rotation of clip art at 0.31.
SimilarityResult analyse_similarity(const Neighbours& nn, const std::vector<DupItem>& items,
                                    const ExactResult& exact, const Thresholds& t,
                                    const std::vector<IndexPair>& extra_pairs = {},
                                    const PairCheck& check = {});

} // namespace vislint::graph
