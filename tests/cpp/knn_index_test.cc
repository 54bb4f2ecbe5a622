#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "index/knn_index.h"
#include "vislint/status.h"

namespace vislint {
namespace {

namespace fs = std::filesystem;
using index::IndexOptions;
using index::KnnGraph;
using index::KnnIndex;

// n x d unit vectors around `clusters` random centres (noise of norm ~`noise`), fixed seed.
std::vector<float> clustered(int64_t n, int d, int clusters, float noise, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g(0.f, 1.f);
    auto normalise = [d](float* v) {
        double s = 0;
        for (int j = 0; j < d; ++j) s += double(v[j]) * v[j];
        for (int j = 0; j < d; ++j) v[j] = float(v[j] / std::sqrt(s));
    };
    std::vector<float> centres(size_t(clusters) * d), x(size_t(n) * d);
    for (auto& c : centres) c = g(rng);
    for (int c = 0; c < clusters; ++c) normalise(centres.data() + c * d);
    const float sigma = noise / std::sqrt(float(d));
    for (int64_t i = 0; i < n; ++i) {
        const float* c = centres.data() + (rng() % clusters) * d;
        for (int j = 0; j < d; ++j) x[i * d + j] = c[j] + sigma * g(rng);
        normalise(x.data() + i * d);
    }
    return x;
}

float dot(const float* a, const float* b, int d) {
    float s = 0;
    for (int j = 0; j < d; ++j) s += a[j] * b[j];
    return s;
}

// Exact top-k of the given query rows against all n, self excluded: (sim, id) best first.
std::vector<std::vector<std::pair<float, int64_t>>>
brute(const std::vector<float>& x, int d, const std::vector<int64_t>& rows, int k) {
    const int64_t n = int64_t(x.size()) / d;
    std::vector<std::vector<std::pair<float, int64_t>>> out;
    for (int64_t q : rows) {
        std::vector<std::pair<float, int64_t>> all;
        for (int64_t i = 0; i < n; ++i)
            if (i != q) all.push_back({dot(&x[q * d], &x[i * d], d), i});
        const size_t kk = std::min<size_t>(k, all.size());
        std::partial_sort(all.begin(), all.begin() + kk, all.end(),
                          [](auto& a, auto& b) { return a.first > b.first; });
        all.resize(kk);
        out.push_back(all);
    }
    return out;
}

std::vector<int64_t> every_row(int64_t n, int64_t step) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < n; i += step) rows.push_back(i);
    return rows;
}

std::string temp_path(const std::string& name) {
    return (fs::temp_directory_path() / ("vislint_knn_" + name)).string();
}

TEST(KnnIndex, ExactModeEqualsBruteForce) {
    const int d = 32, k = 10;
    const int64_t n = 3000;
    const auto x = clustered(n, d, 30, 0.8f, 1);
    KnnIndex idx = KnnIndex::build(x.data(), n, d, IndexOptions{});
    EXPECT_TRUE(idx.exact());
    EXPECT_EQ(idx.description(), "Flat");
    EXPECT_EQ(idx.size(), n);
    EXPECT_EQ(idx.dim(), d);

    const KnnGraph g = idx.self_graph(x.data(), k);
    ASSERT_EQ(g.n, n);
    ASSERT_EQ(g.k, k);
    const auto rows = every_row(n, 7);
    const auto truth = brute(x, d, rows, k);
    for (size_t q = 0; q < rows.size(); ++q) {
        for (int j = 0; j < k; ++j) {
            const int64_t id = g.row_ids(rows[q])[j];
            const float sim = g.row_sims(rows[q])[j];
            EXPECT_NEAR(sim, truth[q][j].first, 1e-5);
            // Same id, or a different one with the same similarity (float tie).
            if (id != truth[q][j].second) {
                EXPECT_NEAR(dot(&x[rows[q] * d], &x[id * d], d), truth[q][j].first, 1e-5);
            }
            EXPECT_NE(id, rows[q]);
        }
    }

    // search() of arbitrary queries: the indexed vector itself comes first.
    std::vector<int64_t> ids(3 * k);
    std::vector<float> sims(3 * k);
    idx.search(x.data() + 100 * d, 3, k, ids.data(), sims.data());
    EXPECT_EQ(ids[0], 100);
    EXPECT_NEAR(sims[0], 1.f, 1e-5);
    EXPECT_EQ(ids[k], 101);
    EXPECT_EQ(ids[2 * k], 102);
}

double graph_recall(const KnnGraph& g, const std::vector<float>& x, int d,
                    const std::vector<int64_t>& rows) {
    const auto truth = brute(x, d, rows, g.k);
    int64_t hits = 0;
    for (size_t q = 0; q < rows.size(); ++q) {
        const int64_t* got = g.row_ids(rows[q]);
        for (auto& t : truth[q]) hits += std::count(got, got + g.k, t.second);
    }
    return double(hits) / double(rows.size() * g.k);
}

TEST(KnnIndex, ApproximateModeRecall) {
    const int d = 64, k = 10;
    const int64_t n = 2000;
    // 20 clusters, and every 20th vector replaced by pure noise (an outlier).
    auto x = clustered(n, d, 20, 0.8f, 2);
    const auto noise = clustered(n / 20, d, n / 20, 0.f, 22); // random unit vectors
    for (int64_t i = 0; i < n / 20; ++i) std::copy_n(&noise[i * d], d, &x[i * 20 * d]);
    IndexOptions opt;
    opt.exact_max = 500; // force IVF
    KnnIndex idx = KnnIndex::build(x.data(), n, d, opt);
    EXPECT_FALSE(idx.exact());
    EXPECT_EQ(idx.description().rfind("IVF", 0), 0u) << idx.description();
    EXPECT_EQ(idx.size(), n);

    const KnnGraph g = idx.self_graph(x.data(), k);
    const auto rows = every_row(n, 3);
    for (int64_t q : rows)
        for (int j = 0; j < k; ++j) {
            const int64_t id = g.row_ids(q)[j];
            EXPECT_NE(id, q);
            if (id >= 0) { // similarities of the neighbours found are exact (IVF-Flat)
                EXPECT_NEAR(g.row_sims(q)[j], dot(&x[q * d], &x[id * d], d), 1e-5);
            }
        }
    const double recall = graph_recall(g, x, d, rows);
    EXPECT_GE(recall, 0.95) << idx.description();

    // It is approximate: one list per query misses neighbours.
    opt.nprobe = 1;
    KnnIndex one = KnnIndex::build(x.data(), n, d, opt);
    const double recall1 = graph_recall(one.self_graph(x.data(), k), x, d, rows);
    EXPECT_LT(recall1, recall) << one.description(); // measured: 0.75 vs 0.997
}

TEST(KnnIndex, ConcurrentSearchesAgree) {
    const int d = 32, k = 5;
    const int64_t n = 2000, nq = 200;
    const auto x = clustered(n, d, 20, 0.8f, 8);
    IndexOptions opt;
    opt.exact_max = 500;
    const KnnIndex idx = KnnIndex::build(x.data(), n, d, opt);
    std::vector<int64_t> want(nq * k);
    std::vector<float> want_sims(nq * k);
    idx.search(x.data(), nq, k, want.data(), want_sims.data());
    std::vector<std::vector<int64_t>> got(4, std::vector<int64_t>(nq * k));
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
        pool.emplace_back([&, t] {
            std::vector<float> sims(nq * k);
            for (int rep = 0; rep < 5; ++rep) idx.search(x.data(), nq, k, got[t].data(), sims.data());
        });
    for (auto& th : pool) th.join();
    for (int t = 0; t < 4; ++t) EXPECT_EQ(got[t], want);
}

TEST(KnnIndex, SelfGraphExcludesSelfAmongDuplicates) {
    const int d = 16, k = 4;
    auto x = clustered(200, d, 5, 0.5f, 3);
    // Rows 10..19 are ten copies of row 10: more copies than k + 1 results per query, so a
    // query's own id may not even be returned, and the first result is usually another copy.
    for (int i = 11; i < 20; ++i) std::copy_n(&x[10 * d], d, &x[i * d]);
    const int64_t n = int64_t(x.size()) / d;
    for (int64_t exact_max : {int64_t(50000), int64_t(0)}) {
        IndexOptions opt;
        opt.exact_max = exact_max;
        KnnIndex idx = KnnIndex::build(x.data(), n, d, opt);
        const KnnGraph g = idx.self_graph(x.data(), k);
        for (int64_t i = 0; i < n; ++i)
            for (int j = 0; j < k; ++j) EXPECT_NE(g.row_ids(i)[j], i) << idx.description();
        for (int64_t i = 10; i < 20; ++i)
            for (int j = 0; j < k; ++j) {
                const int64_t id = g.row_ids(i)[j];
                EXPECT_TRUE(id >= 10 && id < 20) << "row " << i << " got " << id;
                EXPECT_NEAR(g.row_sims(i)[j], 1.f, 1e-5);
            }
    }
}

TEST(KnnIndex, PaddingWhenFewerThanKNeighbours) {
    const int d = 8, k = 5;
    const auto x = clustered(3, d, 2, 0.5f, 4);
    KnnIndex idx = KnnIndex::build(x.data(), 3, d, IndexOptions{});
    const KnnGraph g = idx.self_graph(x.data(), k);
    for (int64_t i = 0; i < 3; ++i) {
        for (int j = 0; j < 2; ++j) {
            EXPECT_GE(g.row_ids(i)[j], 0);
            EXPECT_NE(g.row_ids(i)[j], i);
            EXPECT_GT(g.row_sims(i)[j], -1.01f);
        }
        for (int j = 2; j < k; ++j) {
            EXPECT_EQ(g.row_ids(i)[j], -1);
            EXPECT_EQ(g.row_sims(i)[j], -std::numeric_limits<float>::infinity());
        }
    }
    std::vector<int64_t> ids(k);
    std::vector<float> sims(k);
    idx.search(x.data(), 1, k, ids.data(), sims.data());
    EXPECT_EQ(ids[3], -1);
    EXPECT_EQ(sims[4], -std::numeric_limits<float>::infinity());

    // One vector: a row of padding only. No vectors: an empty graph.
    KnnIndex one = KnnIndex::build(x.data(), 1, d, IndexOptions{});
    const KnnGraph g1 = one.self_graph(x.data(), k);
    EXPECT_TRUE(std::all_of(g1.ids.begin(), g1.ids.end(), [](int64_t id) { return id == -1; }));
    KnnIndex none = KnnIndex::build(nullptr, 0, d, IndexOptions{});
    EXPECT_EQ(none.self_graph(nullptr, k).ids.size(), 0u);
}

TEST(KnnIndex, ProgressAndCancellation) {
    const int d = 16;
    const auto x = clustered(1000, d, 10, 0.5f, 5);
    std::vector<std::string> stages;
    KnnIndex idx = KnnIndex::build(x.data(), 1000, d, IndexOptions{},
                                   [&](const char* stage, uint64_t done, uint64_t total) {
                                       stages.push_back(stage);
                                       return true;
                                   });
    EXPECT_NE(std::find(stages.begin(), stages.end(), "knn.add"), stages.end());
    EXPECT_THROW(idx.self_graph(x.data(), 3, [](const char*, uint64_t, uint64_t) { return false; }),
                 Cancelled);
}

TEST(KnnIndex, SaveLoadRoundTrip) {
    const int d = 32, k = 8;
    const int64_t n = 2000;
    const auto x = clustered(n, d, 20, 0.8f, 6);
    for (int64_t exact_max : {int64_t(50000), int64_t(500)}) {
        IndexOptions opt;
        opt.exact_max = exact_max;
        KnnIndex idx = KnnIndex::build(x.data(), n, d, opt);
        const std::string path = temp_path("roundtrip.faiss");
        idx.save(path);
        KnnIndex back = KnnIndex::load(path);
        fs::remove(path);
        EXPECT_EQ(back.description(), idx.description());
        EXPECT_EQ(back.size(), n);
        EXPECT_EQ(back.dim(), d);
        EXPECT_EQ(back.exact(), idx.exact());

        const int64_t nq = 50;
        std::vector<int64_t> a(nq * k), b(nq * k);
        std::vector<float> sa(nq * k), sb(nq * k);
        idx.search(x.data(), nq, k, a.data(), sa.data());
        back.search(x.data(), nq, k, b.data(), sb.data());
        EXPECT_EQ(a, b) << idx.description();
        EXPECT_EQ(sa, sb) << idx.description();
    }
}

// n unit vectors of dimension d whose structure lives in a random `rank`-dimensional subspace
// (clusters there), plus a little isotropic noise: what a PCA to >= rank dimensions keeps.
std::vector<float> low_rank(int64_t n, int d, int rank, uint64_t seed) {
    const auto y = clustered(n, rank, 25, 0.7f, seed);
    const auto basis = clustered(rank, d, rank, 1e6f, seed + 1); // rank random unit directions
    std::mt19937_64 rng(seed + 2);
    std::normal_distribution<float> g(0.f, 0.02f / std::sqrt(float(d)));
    std::vector<float> x(size_t(n) * d, 0.f);
    for (int64_t i = 0; i < n; ++i) {
        float* v = x.data() + i * d;
        for (int r = 0; r < rank; ++r)
            for (int j = 0; j < d; ++j) v[j] += y[i * rank + r] * basis[size_t(r) * d + j];
        double s = 0;
        for (int j = 0; j < d; ++j) {
            v[j] += g(rng);
            s += double(v[j]) * v[j];
        }
        for (int j = 0; j < d; ++j) v[j] = float(v[j] / std::sqrt(s));
    }
    return x;
}

index::RowSource rows_of(const std::vector<float>& x, int d) {
    return [&x, d](const int64_t* ids, int64_t count, float* out) {
        for (int64_t i = 0; i < count; ++i) std::copy_n(&x[size_t(ids[i]) * d], d, out + i * d);
    };
}

TEST(KnnIndex, ReducedIndexRescoresToExactSimilarities) {
    const int d = 256, k = 10;
    const int64_t n = 3000;
    const auto x = low_rank(n, d, 24, 11);
    const auto rows = every_row(n, 37);
    const auto truth = brute(x, d, rows, k);
    for (int64_t exact_max : {int64_t(50000), int64_t(1000)}) { // Flat and IVF behind the PCA
        IndexOptions opt;
        opt.reduce_dim = 32;
        opt.reduce_min = 1000;
        opt.exact_max = exact_max;
        opt.nprobe = 16;
        KnnIndex idx = KnnIndex::build(rows_of(x, d), n, d, opt);
        ASSERT_TRUE(idx.reduced());
        EXPECT_EQ(idx.dim(), d);
        EXPECT_EQ(idx.indexed_dim(), 32);
        EXPECT_EQ(idx.description().rfind("PCA256->32,", 0), 0u) << idx.description();
        const KnnGraph g = idx.self_graph(rows_of(x, d), k);
        int64_t hits = 0, total = 0;
        for (size_t q = 0; q < rows.size(); ++q) {
            const int64_t r = rows[q];
            for (int j = 0; j < k; ++j) {
                const int64_t id = g.row_ids(r)[j];
                ASSERT_GE(id, 0);
                ASSERT_NE(id, r);
                // Similarities are those of the full vectors, not of their projections.
                EXPECT_NEAR(g.row_sims(r)[j], dot(&x[r * d], &x[id * d], d), 1e-5);
                if (j > 0) EXPECT_GE(g.row_sims(r)[j - 1], g.row_sims(r)[j]);
            }
            for (const auto& [sim, id] : truth[q]) {
                hits += std::count(g.row_ids(r), g.row_ids(r) + k, id);
                ++total;
            }
        }
        EXPECT_GE(double(hits) / double(total), 0.97) << idx.description();
    }
}

TEST(KnnIndex, ReductionOnlyWhenLargerThanTheTargets) {
    const auto x = low_rank(600, 64, 8, 12);
    IndexOptions opt;
    opt.reduce_dim = 16;
    opt.reduce_min = 600; // not more than reduce_min vectors: no PCA
    EXPECT_FALSE(KnnIndex::build(x.data(), 600, 64, opt).reduced());
    opt.reduce_min = 599;
    EXPECT_TRUE(KnnIndex::build(x.data(), 600, 64, opt).reduced());
    opt.reduce_dim = 64; // d not larger than reduce_dim
    EXPECT_FALSE(KnnIndex::build(x.data(), 600, 64, opt).reduced());
    opt.reduce_dim = 0;
    EXPECT_FALSE(KnnIndex::build(x.data(), 600, 64, opt).reduced());
}

TEST(KnnIndex, ReducedIndexSavesLoadsAndNeedsTheFullVectorsToSearch) {
    const int d = 128, k = 5;
    const int64_t n = 1500;
    const auto x = low_rank(n, d, 16, 13);
    IndexOptions opt;
    opt.reduce_dim = 24;
    opt.reduce_min = 100;
    KnnIndex idx = KnnIndex::build(rows_of(x, d), n, d, opt);
    const std::string path = temp_path("reduced.faiss");
    idx.save(path);
    KnnIndex back = KnnIndex::load(path);
    fs::remove(path);
    EXPECT_TRUE(back.reduced());
    EXPECT_EQ(back.description(), idx.description());
    EXPECT_EQ(back.dim(), d);
    EXPECT_EQ(back.size(), n);

    const int64_t nq = 40;
    std::vector<int64_t> a(nq * k), b(nq * k);
    std::vector<float> sa(nq * k), sb(nq * k);
    idx.search(x.data(), nq, k, a.data(), sa.data(), rows_of(x, d));
    back.search(x.data(), nq, k, b.data(), sb.data(), rows_of(x, d));
    EXPECT_EQ(a, b);
    EXPECT_EQ(sa, sb);
    for (int64_t q = 0; q < nq; ++q) {
        EXPECT_EQ(a[q * k], q); // a vector is its own best match
        EXPECT_NEAR(sa[q * k], 1.f, 1e-5);
    }
    EXPECT_THROW(back.search(x.data(), 1, k, b.data(), sb.data()), Error);
}

TEST(KnnIndex, LoadMissingOrGarbageThrowsWithPath) {
    const std::string missing = temp_path("does_not_exist.faiss");
    fs::remove(missing);
    try {
        KnnIndex::load(missing);
        FAIL() << "no exception";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    }

    const std::string garbage = temp_path("garbage.faiss");
    for (const std::string& content : {std::string("this is not an index, just some text\n"),
                                      std::string()}) {
        std::FILE* f = std::fopen(garbage.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        std::fwrite(content.data(), 1, content.size(), f);
        std::fclose(f);
        try {
            KnnIndex::load(garbage);
            FAIL() << "no exception";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(garbage), std::string::npos) << e.what();
        }
    }

    // A valid index cut short.
    const auto x = clustered(100, 8, 3, 0.5f, 7);
    KnnIndex::build(x.data(), 100, 8, IndexOptions{}).save(garbage);
    fs::resize_file(garbage, fs::file_size(garbage) / 2);
    EXPECT_THROW(KnnIndex::load(garbage), Error);
    fs::remove(garbage);
}

TEST(KnnIndex, BadOptionsThrow) {
    const float v[4] = {1, 0, 0, 0};
    IndexOptions opt;
    opt.nprobe = -1;
    EXPECT_THROW(KnnIndex::build(v, 1, 4, opt), Error);
    EXPECT_THROW(KnnIndex::build(v, 1, 0, IndexOptions{}), Error);
    KnnIndex idx = KnnIndex::build(v, 1, 4, IndexOptions{});
    EXPECT_THROW(idx.self_graph(v, 0), Error);
}

} // namespace
} // namespace vislint
