#include "graph/similarity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/median.h"
#include "graph/union_find.h"

namespace vislint::graph {

SimilarityResult analyse_similarity(const Neighbours& nn, const std::vector<DupItem>& items,
                                    const ExactResult& exact, const Thresholds& t,
                                    const std::vector<IndexPair>& extra_pairs, const PairCheck& check) {
    SimilarityResult out;
    const size_t n = size_t(nn.n);
    const int k = nn.k;

    // Near duplicates: each undirected edge once. With a check, edges down to t.copy_candidate
    // are candidates too, and become near duplicates only when the check finds a copy.
    const double floor = check ? std::min(t.copy_candidate, t.near_duplicate) : t.near_duplicate;
    std::vector<IndexPair> pairs, below; // `below`: under t.near_duplicate, kept as copies only
    for (size_t i = 0; i < n; ++i)
        for (int j = 0; j < k; ++j) {
            int64_t other = nn.ids[i * k + j];
            float sim = nn.sims[i * k + j];
            if (other < 0 || sim < floor) continue;
            size_t a = std::min(i, size_t(other)), b = std::max(i, size_t(other));
            if (a == b) continue;
            const bool above = sim >= t.near_duplicate;
            char detail[96];
            std::snprintf(detail, sizeof(detail), "cosine similarity %.4f %s %.4f", sim, above ? ">=" : "<",
                          t.near_duplicate);
            (above ? pairs : below).push_back({a, b, double(sim), detail, above ? t.near_duplicate : floor});
        }
    for (const auto& p : extra_pairs)
        pairs.push_back({std::min(p.a, p.b), std::max(p.a, p.b), p.score, p.detail, p.threshold});
    // A pair found by both rules keeps its strongest evidence: the larger margin over its own
    // rule's threshold (cosine and hash scores are on different scales).
    auto unique_pairs = [](std::vector<IndexPair>* v) {
        std::sort(v->begin(), v->end(), [](const IndexPair& x, const IndexPair& y) {
            if (x.a != y.a) return x.a < y.a;
            if (x.b != y.b) return x.b < y.b;
            return evidence_margin(x.score, x.threshold) > evidence_margin(y.score, y.threshold);
        });
        v->erase(std::unique(v->begin(), v->end(),
                             [](const IndexPair& x, const IndexPair& y) { return x.a == y.a && x.b == y.b; }),
                 v->end());
    };
    unique_pairs(&pairs);
    // A look-alike by the check is no near duplicate whatever its similarity; under
    // t.near_duplicate only a copy by the check is one. Each pair is checked once.
    if (check) {
        unique_pairs(&below);
        auto before = [](const IndexPair& x, const IndexPair& y) { return x.a < y.a || (x.a == y.a && x.b < y.b); };
        std::vector<IndexPair> copies;
        for (auto& p : below) // an edge another rule lists already is checked with that rule's pair
            if (!std::binary_search(pairs.begin(), pairs.end(), p, before) && check(&p, true) == Verdict::kCopy)
                copies.push_back(std::move(p));
        std::vector<IndexPair>().swap(below);
        pairs = checked_pairs(std::move(pairs), check);
        for (auto& p : copies) pairs.push_back(std::move(p));
        std::sort(pairs.begin(), pairs.end(), before);
    }
    out.near = group_near_pairs(items, exact, pairs);

    // Clusters.
    UnionFind uf(n);
    for (size_t i = 0; i < n; ++i)
        for (int j = 0; j < k; ++j) {
            int64_t other = nn.ids[i * k + j];
            if (other >= 0 && nn.sims[i * k + j] >= t.cluster) uf.unite(i, size_t(other));
        }
    for (const auto& comp : components(uf)) {
        std::vector<int64_t> ids;
        for (size_t i : comp) ids.push_back(items[i].id);
        out.clusters.push_back(std::move(ids));
    }
    std::stable_sort(out.clusters.begin(), out.clusters.end(),
                     [](const auto& x, const auto& y) { return x.size() > y.size(); });

    // Outliers.
    const int m = std::min(k, 5);
    std::vector<double> scores(n, 0.0);
    out.isolation.resize(n);
    for (size_t i = 0; i < n; ++i) {
        double sum = 0;
        int cnt = 0;
        for (int j = 0; j < m; ++j) {
            if (nn.ids[i * k + j] < 0) break;
            sum += nn.sims[i * k + j];
            ++cnt;
        }
        scores[i] = cnt ? 1.0 - sum / cnt : 1.0;
        out.isolation[i] = {i, scores[i], 0.0, k > 0 ? nn.ids[i * k] : -1, k > 0 ? nn.sims[i * k] : 0.f};
    }
    const double med = median(scores);
    std::vector<double> dev(n);
    for (size_t i = 0; i < n; ++i) dev[i] = std::fabs(scores[i] - med);
    const double scale = std::max(1.4826 * median(dev), 1e-6);
    out.outlier_threshold = med + t.outlier_z * scale;
    for (size_t i = 0; i < n; ++i) {
        out.isolation[i].z = (scores[i] - med) / scale;
        if (n >= 3 && out.isolation[i].z > t.outlier_z) out.outliers.push_back(i);
    }
    std::sort(out.outliers.begin(), out.outliers.end(),
              [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    return out;
}

} // namespace vislint::graph
