// Incremental kNN: KnnIndex::add, index::update_graph and the saved graph file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <vector>

#include "index/graph_update.h"
#include "index/knn_index.h"
#include "store/knn_graph.h"
#include "test_util.h"
#include "vislint/status.h"

namespace vislint {
namespace {

namespace fs = std::filesystem;
using index::IndexOptions;
using index::KnnGraph;
using index::KnnIndex;
using testing::clustered;

index::RowSource rows_of(const std::vector<float>& x, int d) {
    return [&x, d](const int64_t* ids, int64_t count, float* out) {
        for (int64_t i = 0; i < count; ++i) std::copy_n(&x[size_t(ids[i]) * d], d, out + i * d);
    };
}

// Exact k nearest live positions of p (itself excluded), by brute force.
std::vector<int64_t> brute_row(const std::vector<float>& x, int d, const std::vector<bool>& live,
                               int64_t p, int k) {
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t i = 0; i < int64_t(live.size()); ++i) {
        if (i == p || !live[size_t(i)]) continue;
        float s = 0;
        for (int j = 0; j < d; ++j) s += x[size_t(p) * d + j] * x[size_t(i) * d + j];
        all.push_back({s, i});
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end(),
                      [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    std::vector<int64_t> out;
    for (int j = 0; j < k; ++j) out.push_back(all[size_t(j)].second);
    return out;
}

struct Case {
    const char* name;
    int64_t exact_max;
};

// Build over n0 vectors, then add n1 and retire some: the updated graph against brute force,
// and against the rows the same index gives when searched afresh.
void check_update(const Case& c) {
    const int d = 32, k = 10;
    const int64_t n0 = 4000, n1 = 200; // 5 % added
    const auto x = clustered(n0 + n1, d, 40, 0.9f, 2);
    IndexOptions opt;
    opt.exact_max = c.exact_max;
    opt.threads = 2;
    KnnIndex idx = KnnIndex::build(rows_of(x, d), n0, d, opt);
    KnnGraph g = idx.self_graph(rows_of(x, d), k);
    idx.add(rows_of(x, d), n1);
    ASSERT_EQ(idx.size(), n0 + n1);
    std::vector<bool> live(size_t(n0 + n1), true);
    std::mt19937_64 rng(4);
    int64_t retired = 0;
    for (int64_t p = 0; p < n0; ++p)
        if (rng() % 50 == 0) {
            live[size_t(p)] = false;
            ++retired;
        }
    ASSERT_GT(retired, 40);
    const index::GraphUpdateStats st = index::update_graph(idx, rows_of(x, d), live, &g);
    EXPECT_EQ(st.added, n1);
    EXPECT_GT(st.researched, retired);
    EXPECT_GT(st.entered, 0);
    ASSERT_EQ(g.n, n0 + n1);

    int64_t agree = 0, total = 0, fresh_agree = 0;
    std::vector<int64_t> ids(size_t(k + 1 + retired));
    std::vector<float> sims(ids.size());
    std::vector<float> q(static_cast<size_t>(d));
    for (int64_t p = 0; p < n0 + n1; ++p) {
        const int64_t* row = g.row_ids(p);
        if (!live[size_t(p)]) {
            EXPECT_EQ(row[0], -1) << c.name << ": a retired row is emptied";
            continue;
        }
        std::set<int64_t> mine;
        for (int j = 0; j < k; ++j) {
            ASSERT_GE(row[j], 0) << c.name;
            EXPECT_NE(row[j], p) << c.name;
            EXPECT_TRUE(live[size_t(row[j])]) << c.name << ": row " << p << " holds a retired position";
            if (j > 0) {
                EXPECT_GE(g.row_sims(p)[j - 1], g.row_sims(p)[j]) << c.name << ": best first";
            }
            mine.insert(row[j]);
        }
        // What the same index answers for p now, retired positions and p left out.
        std::copy_n(&x[size_t(p) * d], d, q.data());
        idx.search(q.data(), 1, int(ids.size()), ids.data(), sims.data(), rows_of(x, d));
        std::set<int64_t> fresh;
        for (size_t j = 0; j < ids.size() && fresh.size() < size_t(k); ++j)
            if (ids[j] >= 0 && ids[j] != p && live[size_t(ids[j])]) fresh.insert(ids[j]);
        const std::vector<int64_t> exact = brute_row(x, d, live, p, k);
        for (int64_t e : exact) {
            agree += mine.count(e);
            fresh_agree += fresh.count(e);
        }
        total += k;
        if (p >= n0) {
            EXPECT_EQ(mine, fresh) << c.name << ": an added row is the index's own answer";
        }
    }
    const double recall = double(agree) / double(total), fresh_recall = double(fresh_agree) / double(total);
    EXPECT_GE(recall, fresh_recall - 0.002) << c.name << ": updated " << recall << " vs fresh " << fresh_recall;
    if (c.exact_max > n0) {
        EXPECT_GE(recall, 0.998) << c.name;
    }
}

TEST(GraphUpdate, FlatIndexMatchesBruteForce) { check_update({"Flat", 100000}); }
TEST(GraphUpdate, IvfIndexMatchesItsOwnFreshSearch) { check_update({"IVF", 1000}); }

TEST(GraphUpdate, AddAfterLoadEqualsBuildingAtOnce) {
    const int d = 24;
    const int64_t n0 = 3000, n1 = 300;
    const auto x = clustered(n0 + n1, d, 20, 0.8f, 6);
    for (int64_t exact_max : {int64_t(100000), int64_t(500)}) {
        IndexOptions opt;
        opt.exact_max = exact_max;
        KnnIndex part = KnnIndex::build(rows_of(x, d), n0, d, opt);
        const std::string path = (fs::temp_directory_path() / "vislint_graph_update_add.faiss").string();
        part.save(path);
        if (!part.exact()) {
            // Mapped lists are read only.
            KnnIndex mapped = KnnIndex::load(path);
            EXPECT_THROW(mapped.add(rows_of(x, d), n1), Error);
        }
        IndexOptions lopt;
        lopt.map_lists = false;
        KnnIndex grown = KnnIndex::load(path, lopt);
        grown.add(rows_of(x, d), n1);
        grown.save(path);
        KnnIndex reloaded = KnnIndex::load(path);
        ASSERT_EQ(reloaded.size(), n0 + n1);
        // Searches see the added vectors: each added vector finds itself first.
        const int k = 5;
        std::vector<int64_t> ids(size_t(n1) * k);
        std::vector<float> sims(ids.size());
        reloaded.search(&x[size_t(n0) * d], n1, k, ids.data(), sims.data(), rows_of(x, d));
        int64_t self = 0;
        for (int64_t i = 0; i < n1; ++i) self += ids[size_t(i) * k] == n0 + i;
        EXPECT_GE(self, n1 - 2) << "exact_max " << exact_max;
        std::remove(path.c_str());
    }
}

TEST(SavedGraph, RoundTripAndDamage) {
    const std::string path = (fs::temp_directory_path() / "vislint_graph_roundtrip.bin").string();
    store::SavedGraph g;
    g.generation = 0xfeedbeefcafe;
    g.n = 3;
    g.k = 2;
    g.ids = {1, 2, 0, -1, 0, 1};
    g.sims = {0.9f, 0.5f, 0.8f, -INFINITY, 0.7f, 0.6f};
    store::save_graph(path, g.generation, g.n, g.k, g.ids.data(), g.sims.data());
    store::SavedGraph r;
    ASSERT_TRUE(store::load_graph(path, &r));
    EXPECT_EQ(r.generation, g.generation);
    EXPECT_EQ(r.ids, g.ids);
    EXPECT_EQ(r.sims, g.sims);
    // Truncated, or holding a position past its rows: refused (the scan then rebuilds).
    fs::resize_file(path, fs::file_size(path) - 4);
    EXPECT_FALSE(store::load_graph(path, &r));
    g.ids[1] = 7;
    store::save_graph(path, g.generation, g.n, g.k, g.ids.data(), g.sims.data());
    EXPECT_FALSE(store::load_graph(path, &r));
    std::ofstream(path) << "not a graph";
    EXPECT_FALSE(store::load_graph(path, &r));
    std::remove(path.c_str());
    EXPECT_FALSE(store::load_graph(path, &r));
}

} // namespace
} // namespace vislint
