#include "index/graph_update.h"

#include <algorithm>
#include <limits>

#include "vislint/status.h"

namespace vislint::index {
namespace {

constexpr int64_t kSearchBatch = 4096;
// Candidates of an added vector, in multiples of k, whose rows it may enter (graph_update.h).
constexpr int64_t kReverseWidth = 8;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Best first; equal similarities by id (the order self_graph() and search() give).
bool better(float sa, int64_t ia, float sb, int64_t ib) { return sa != sb ? sa > sb : ia < ib; }

// Searches `queries` (positions) and writes, per query, up to `want` live neighbours other than
// itself into cand (queries.size() x want, padded -1 / -inf). A query whose results were cut
// short by retired positions is searched again with more results, up to the whole index.
void search_live(const KnnIndex& idx, const RowSource& rows, const std::vector<bool>& live,
                 const std::vector<int64_t>& queries, int want, int64_t retired,
                 std::vector<int64_t>* cand_ids, std::vector<float>* cand_sims,
                 const ProgressFn& progress, uint64_t* done, uint64_t total) {
    const int64_t n = idx.size();
    const int d = idx.dim();
    cand_ids->assign(queries.size() * size_t(want), -1);
    cand_sims->assign(queries.size() * size_t(want), kNegInf);
    // The query itself, and some retired positions, may come first.
    int ask = int(std::min<int64_t>(n, int64_t(want) + 1 + std::min<int64_t>(retired, want)));
    std::vector<int64_t> todo(queries.size());
    for (size_t i = 0; i < todo.size(); ++i) todo[i] = int64_t(i);
    std::vector<float> x;
    std::vector<int64_t> ids, qpos;
    std::vector<float> sims;
    while (!todo.empty()) {
        std::vector<int64_t> again;
        for (size_t b0 = 0; b0 < todo.size(); b0 += size_t(kSearchBatch)) {
            const int64_t m = std::min<int64_t>(kSearchBatch, int64_t(todo.size() - b0));
            qpos.resize(size_t(m));
            for (int64_t i = 0; i < m; ++i) qpos[size_t(i)] = queries[size_t(todo[b0 + size_t(i)])];
            x.resize(size_t(m) * d);
            rows(qpos.data(), m, x.data());
            ids.resize(size_t(m) * ask);
            sims.resize(size_t(m) * ask);
            idx.search(x.data(), m, ask, ids.data(), sims.data(), rows);
            for (int64_t i = 0; i < m; ++i) {
                const int64_t q = todo[b0 + size_t(i)];
                int64_t* out_i = cand_ids->data() + q * want;
                float* out_s = cand_sims->data() + q * want;
                int got = 0, skipped = 0;
                for (int j = 0; j < ask && got < want; ++j) {
                    const int64_t c = ids[size_t(i) * ask + j];
                    if (c < 0) break;
                    if (c == qpos[size_t(i)] || !live[size_t(c)]) {
                        skipped += c != qpos[size_t(i)];
                        continue;
                    }
                    out_i[got] = c;
                    out_s[got] = sims[size_t(i) * ask + j];
                    ++got;
                }
                if (got < want && skipped > 0 && ask < n) again.push_back(q);
            }
            *done += uint64_t(m);
            if (progress && !progress("knn.update", *done, total))
                throw Cancelled("cancelled during knn.update");
        }
        if (again.empty() || ask >= n) break;
        ask = int(std::min<int64_t>(n, int64_t(ask) * 2));
        todo.swap(again);
    }
}

} // namespace

GraphUpdateStats update_graph(const KnnIndex& idx, const RowSource& rows,
                              const std::vector<bool>& live, KnnGraph* graph,
                              const ProgressFn& progress) {
    const int64_t n_old = graph->n, n = idx.size();
    const int k = graph->k;
    if (n_old > n || int64_t(live.size()) != n || k < 1)
        throw Error("kNN graph update: the graph, the index and the live positions disagree");
    graph->ids.resize(size_t(n) * k, -1);
    graph->sims.resize(size_t(n) * k, kNegInf);
    graph->n = n;

    int64_t retired = 0;
    for (bool l : live) retired += !l;
    // Rows to search: every live added position, and every live kept row that held a retired one.
    std::vector<int64_t> added, stale;
    for (int64_t p = n_old; p < n; ++p)
        if (live[size_t(p)]) added.push_back(p);
    for (int64_t p = 0; p < n_old; ++p) {
        int64_t* row = graph->ids.data() + p * k;
        if (!live[size_t(p)]) {
            std::fill_n(row, k, -1);
            std::fill_n(graph->sims.data() + p * k, k, kNegInf);
            continue;
        }
        for (int j = 0; j < k; ++j)
            if (row[j] >= 0 && !live[size_t(row[j])]) {
                stale.push_back(p);
                break;
            }
    }
    GraphUpdateStats st;
    st.added = int64_t(added.size());
    st.researched = int64_t(stale.size());
    const uint64_t total = uint64_t(added.size() + stale.size());
    uint64_t done = 0;
    if (progress && !progress("knn.update", 0, total)) throw Cancelled("cancelled during knn.update");

    // Added rows, with 8k + 1 candidates each: the first k are the row, all of them are the
    // kept rows the added vector may enter.
    const int wide = int(std::min<int64_t>(kReverseWidth * int64_t(k) + 1, std::max<int64_t>(1, n - 1)));
    std::vector<int64_t> cid;
    std::vector<float> csim;
    search_live(idx, rows, live, added, wide, retired, &cid, &csim, progress, &done, total);
    std::vector<bool> searched(size_t(n), false);
    for (int64_t p : stale) searched[size_t(p)] = true;
    for (int64_t p : added) searched[size_t(p)] = true;
    for (size_t i = 0; i < added.size(); ++i)
        for (int j = 0; j < k; ++j) {
            const bool have = j < wide;
            graph->ids[size_t(added[i]) * k + j] = have ? cid[i * size_t(wide) + j] : -1;
            graph->sims[size_t(added[i]) * k + j] = have ? csim[i * size_t(wide) + j] : kNegInf;
        }

    // Kept rows that held a retired position: searched again against the grown index.
    std::vector<int64_t> sid;
    std::vector<float> ssim;
    search_live(idx, rows, live, stale, k, retired, &sid, &ssim, progress, &done, total);
    for (size_t i = 0; i < stale.size(); ++i) {
        std::copy_n(sid.data() + i * k, k, graph->ids.data() + stale[i] * k);
        std::copy_n(ssim.data() + i * k, k, graph->sims.data() + stale[i] * k);
    }

    // An added vector enters each kept (not re-searched) row it beats, in position order so the
    // result does not depend on batching.
    for (size_t i = 0; i < added.size(); ++i) {
        const int64_t q = added[i];
        for (int j = 0; j < wide; ++j) {
            const int64_t c = cid[i * size_t(wide) + j];
            const float s = csim[i * size_t(wide) + j];
            if (c < 0) break;
            if (searched[size_t(c)]) continue;
            int64_t* ri = graph->ids.data() + c * k;
            float* rs = graph->sims.data() + c * k;
            if (ri[k - 1] >= 0 && !better(s, q, rs[k - 1], ri[k - 1])) continue;
            int at = k - 1;
            while (at > 0 && (ri[at - 1] < 0 || better(s, q, rs[at - 1], ri[at - 1]))) {
                ri[at] = ri[at - 1];
                rs[at] = rs[at - 1];
                --at;
            }
            ri[at] = q;
            rs[at] = s;
            ++st.entered;
        }
    }
    return st;
}

} // namespace vislint::index
