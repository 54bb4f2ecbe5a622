#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "index/knn_index.h"
#include "test_util.h"
#include "vislint/status.h"

namespace vislint {
namespace {

namespace fs = std::filesystem;
using index::IndexOptions;
using index::KnnGraph;
using index::KnnIndex;
using testing::clustered;

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

index::RowSource rows_of(const std::vector<float>& x, int d) {
    return [&x, d](const int64_t* ids, int64_t count, float* out) {
        for (int64_t i = 0; i < count; ++i) std::copy_n(&x[size_t(ids[i]) * d], d, out + i * d);
    };
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

    // search() of arbitrary queries: the indexed vector itself comes first. These float32
    // vectors were rounded to float16 in the index; given the full vectors it re-scores.
    std::vector<int64_t> ids(3 * k);
    std::vector<float> sims(3 * k);
    idx.search(x.data() + 100 * d, 3, k, ids.data(), sims.data(), rows_of(x, d));
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

// Re-scoring runs in blocks of query rows; each block reads its candidates' rows in ascending id
// order. Small blocks give the graph one big block gives, and no read ever goes backwards.
TEST(KnnIndex, ReducedSelfGraphRescoresInBlocksReadInOrder) {
    const int d = 128, k = 8;
    const int64_t n = 3500;
    const auto x = low_rank(n, d, 20, 31);
    IndexOptions opt;
    opt.reduce_dim = 24;
    opt.reduce_min = 1000;
    opt.exact_max = 1000;
    opt.nprobe = 16;
    const KnnIndex one_block = KnnIndex::build(rows_of(x, d), n, d, opt);
    const KnnGraph want = one_block.self_graph(rows_of(x, d), k);
    opt.rescore_bytes = 1024 * d * 4; // 1,024 query rows at a time: 4 blocks
    const KnnIndex blocked = KnnIndex::build(rows_of(x, d), n, d, opt);
    int64_t calls = 0, backwards = 0, fetched = 0;
    const vislint::index::RowSource counted = [&](const int64_t* ids, int64_t count, float* out) {
        ++calls;
        fetched += count;
        for (int64_t i = 1; i < count; ++i) backwards += ids[i] <= ids[i - 1];
        rows_of(x, d)(ids, count, out);
    };
    const KnnGraph got = blocked.self_graph(counted, k);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.sims, want.sims);
    EXPECT_EQ(backwards, 0);
    // The search pass reads every row once, the re-scoring pass each block's rows and, per
    // block, each distinct candidate once: at most n + n + 4 n.
    EXPECT_LE(fetched, 6 * n);
    EXPECT_GT(calls, 0);
    for (int64_t r = 0; r < n; ++r)
        for (int j = 0; j < k; ++j)
            EXPECT_NEAR(got.row_sims(r)[j], dot(&x[r * d], &x[got.row_ids(r)[j] * d], d), 1e-5);
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

// The dot product in double: the reference for "exact" float32 similarities, which differ from
// it only by float32 accumulation (a few 1e-7 at these dimensions).
double dot64(const float* a, const float* b, int d) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += double(a[j]) * b[j];
    return s;
}
constexpr double kExact = 2e-6;

// x rounded to float16 and back: what features.npy (float16 on disk) gives the index.
std::vector<float> as_float16(const std::vector<float>& x) {
    std::vector<uint16_t> h(x.size());
    std::vector<float> back(x.size());
    index::encode_fp16(x.data(), x.size(), h.data());
    index::decode_fp16(h.data(), h.size(), back.data());
    return back;
}

uint32_t bits(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}

TEST(Fp16, KnownValuesAndRoundingToNearestEven) {
    // IEEE binary16 facts: 1 = 0x3c00, largest finite 65504 = 0x7bff, smallest subnormal 2^-24.
    const float in[] = {1.f, -2.f, 65504.f, 65519.f, 65520.f, std::ldexp(1.f, -24),
                        std::ldexp(1.f, -25), std::ldexp(3.f, -25), 0.f, -0.f,
                        std::numeric_limits<float>::infinity(),
                        1.f + std::ldexp(1.f, -11), 1.f + std::ldexp(3.f, -11)};
    const uint16_t want[] = {0x3c00, 0xc000, 0x7bff, 0x7bff, 0x7c00, 0x0001,
                             0x0000 /* tie to even */, 0x0002 /* 1.5 ulp: up to even */, 0x0000,
                             0x8000, 0x7c00,
                             0x3c00 /* 1 + half ulp: tie to even */, 0x3c02 /* up to even */};
    const size_t n = sizeof(in) / sizeof(in[0]);
    for (bool portable : {true, false}) {
        std::vector<uint16_t> h(n);
        index::encode_fp16(in, n, h.data(), portable);
        for (size_t i = 0; i < n; ++i)
            EXPECT_EQ(h[i], want[i]) << "value " << in[i] << " portable " << portable;
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    uint16_t h = 0;
    float back = 0;
    index::encode_fp16(&nan, 1, &h, true);
    index::decode_fp16(&h, 1, &back, true);
    EXPECT_TRUE(std::isnan(back));
}

TEST(Fp16, HardwareAndPortableCodecsAgreeOnEveryValue) {
    // Every one of the 65536 float16 values decodes to the same float both ways, and encodes
    // back to itself (NaNs: stay NaN).
    std::vector<uint16_t> all(65536), again(65536), again_hw(65536);
    for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);
    std::vector<float> soft(all.size()), hw(all.size());
    index::decode_fp16(all.data(), all.size(), soft.data(), true);
    index::decode_fp16(all.data(), all.size(), hw.data(), false);
    index::encode_fp16(soft.data(), soft.size(), again.data(), true);
    index::encode_fp16(soft.data(), soft.size(), again_hw.data(), false);
    for (size_t i = 0; i < all.size(); ++i) {
        const bool is_nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff) != 0;
        if (is_nan) {
            EXPECT_TRUE(std::isnan(soft[i]) && std::isnan(hw[i])) << i;
            continue;
        }
        ASSERT_EQ(bits(soft[i]), bits(hw[i])) << "half " << i;
        ASSERT_EQ(again[i], all[i]) << "half " << i;
        ASSERT_EQ(again_hw[i], all[i]) << "half " << i;
    }
    // Floats between the float16 values (random bit patterns over the whole range, and values
    // in [-1, 1] like embeddings) round the same way in both codecs, to a nearest float16.
    std::mt19937_64 rng(17);
    std::vector<float> x(200000);
    for (size_t i = 0; i < x.size(); ++i) {
        if (i % 2 == 0) {
            const uint32_t b = uint32_t(rng());
            std::memcpy(&x[i], &b, 4);
            if (std::isnan(x[i])) x[i] = 0.5f;
        } else {
            x[i] = std::uniform_real_distribution<float>(-1.f, 1.f)(rng);
        }
    }
    std::vector<uint16_t> hs(x.size()), hh(x.size());
    index::encode_fp16(x.data(), x.size(), hs.data(), true);
    index::encode_fp16(x.data(), x.size(), hh.data(), false);
    std::vector<float> r(x.size());
    index::decode_fp16(hs.data(), hs.size(), r.data(), true);
    for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(hs[i], hh[i]) << "float " << x[i];
        if (std::isinf(r[i]) && !std::isinf(x[i])) {
            EXPECT_GE(std::abs(x[i]), 65520.f) << x[i];
            continue;
        }
        // Nearest: no other float16 (the neighbours of the result) is closer.
        float up = 0, down = 0;
        const uint16_t u = uint16_t(hs[i] + 1), dn = uint16_t(hs[i] - 1);
        index::decode_fp16(&u, 1, &up, true);
        index::decode_fp16(&dn, 1, &down, true);
        const double err = std::abs(double(x[i]) - r[i]);
        if ((hs[i] & 0x7fff) < 0x7bff && !std::isnan(up)) {
            EXPECT_LE(err, std::abs(double(x[i]) - up)) << x[i];
        }
        if ((hs[i] & 0x7fff) > 0 && !std::isnan(down)) {
            EXPECT_LE(err, std::abs(double(x[i]) - down)) << x[i];
        }
    }
    if (!index::fp16_hardware()) GTEST_SKIP() << "no F16C on this CPU: only the portable codec ran";
}

TEST(KnnIndex, Float16StorageIsExactForFloat16Inputs) {
    // What a scan gives the index: rows of features.npy, float16 values. Stored as float16 they
    // lose nothing, so every similarity is the float32 dot product of those rows.
    const int d = 48, k = 10;
    const int64_t n = 3000;
    const auto x = as_float16(clustered(n, d, 30, 0.8f, 21));
    const auto rows = every_row(n, 11);
    const auto truth = brute(x, d, rows, k);
    for (int64_t exact_max : {int64_t(50000), int64_t(500)}) {
        IndexOptions opt;
        opt.exact_max = exact_max;
        opt.nprobe = 1000; // all 76 lists: IVF finds the exact neighbours too
        KnnIndex idx = KnnIndex::build(x.data(), n, d, opt);
        EXPECT_EQ(idx.description(), exact_max > n ? "Flat" : "IVF76,SQfp16 nprobe=76");
        const KnnGraph g = idx.self_graph(x.data(), k);
        for (size_t q = 0; q < rows.size(); ++q)
            for (int j = 0; j < k; ++j) {
                const int64_t id = g.row_ids(rows[q])[j];
                ASSERT_GE(id, 0);
                EXPECT_NEAR(g.row_sims(rows[q])[j], dot64(&x[rows[q] * d], &x[id * d], d), kExact);
                EXPECT_NEAR(g.row_sims(rows[q])[j], truth[q][j].first, kExact);
            }
        // search() without the full vectors: the same exact similarities.
        const int64_t nq = 20;
        std::vector<int64_t> ids(nq * k);
        std::vector<float> sims(nq * k);
        idx.search(x.data(), nq, k, ids.data(), sims.data());
        for (int64_t q = 0; q < nq; ++q)
            for (int j = 0; j < k; ++j)
                EXPECT_NEAR(sims[q * k + j], dot64(&x[q * d], &x[ids[q * k + j] * d], d), kExact);
    }
}

TEST(KnnIndex, Float16StorageOfFloat32InputsIsRescored) {
    // float32 inputs are rounded when stored (each component by < 2^-11 relative, so a unit
    // vector's similarity moves by < 2^-11 = 4.9e-4). With the full vectors (self_graph, search
    // with `base`) the results are re-scored and exact; without them, within that bound.
    const int d = 64, k = 10;
    const int64_t n = 2500;
    const auto x = clustered(n, d, 25, 0.8f, 23);
    const double bound = std::ldexp(1.0, -11) + kExact;
    for (int64_t exact_max : {int64_t(50000), int64_t(500)}) {
        IndexOptions opt;
        opt.exact_max = exact_max;
        opt.nprobe = 64;
        KnnIndex idx = KnnIndex::build(x.data(), n, d, opt);
        const auto rows = every_row(n, 13);
        const KnnGraph g = idx.self_graph(x.data(), k);
        const auto truth = brute(x, d, rows, k);
        int64_t hits = 0;
        for (size_t q = 0; q < rows.size(); ++q) {
            for (int j = 0; j < k; ++j) {
                const int64_t id = g.row_ids(rows[q])[j];
                ASSERT_GE(id, 0);
                EXPECT_NEAR(g.row_sims(rows[q])[j], dot64(&x[rows[q] * d], &x[id * d], d), kExact);
            }
            for (auto& t : truth[q]) hits += std::count(g.row_ids(rows[q]), g.row_ids(rows[q]) + k, t.second);
        }
        EXPECT_GE(double(hits) / double(rows.size() * k), 0.999) << idx.description();

        const int64_t nq = 30;
        std::vector<int64_t> ids(nq * k), ids_b(nq * k);
        std::vector<float> sims(nq * k), sims_b(nq * k);
        idx.search(x.data() + 7 * d, nq, k, ids.data(), sims.data());
        idx.search(x.data() + 7 * d, nq, k, ids_b.data(), sims_b.data(), rows_of(x, d));
        double worst = 0;
        for (int64_t q = 0; q < nq; ++q)
            for (int j = 0; j < k; ++j) {
                const float* qv = &x[(7 + q) * d];
                const double err = std::abs(sims[q * k + j] - dot64(qv, &x[ids[q * k + j] * d], d));
                worst = std::max(worst, err);
                EXPECT_LE(err, bound);
                EXPECT_NEAR(sims_b[q * k + j], dot64(qv, &x[ids_b[q * k + j] * d], d), kExact);
            }
        EXPECT_GT(worst, 0.0) << "float32 inputs should not survive float16 exactly";
        EXPECT_EQ(ids_b[0], 7);
        EXPECT_NEAR(sims_b[0], dot64(&x[7 * d], &x[7 * d], d), kExact);
    }
}

// Whether `path` is memory-mapped into this process (/proc/self/maps lists mapped files).
bool is_mapped(const std::string& path) {
    std::ifstream maps("/proc/self/maps");
    const std::string canonical = fs::canonical(path).string();
    for (std::string line; std::getline(maps, line);)
        if (line.size() >= canonical.size() &&
            line.compare(line.size() - canonical.size(), canonical.size(), canonical) == 0)
            return true;
    return false;
}

TEST(KnnIndex, IvfListsAreMemoryMappedOnLoad) {
    const int d = 32, k = 6;
    const int64_t n = 4000;
    const auto x = as_float16(clustered(n, d, 20, 0.8f, 24));
    IndexOptions opt;
    opt.exact_max = 500;
    KnnIndex idx = KnnIndex::build(x.data(), n, d, opt);
    const std::string path = temp_path("mapped.faiss");
    idx.save(path);
    const int64_t nq = 100;
    std::vector<int64_t> a(nq * k), b(nq * k);
    std::vector<float> sa(nq * k), sb(nq * k);
    idx.search(x.data(), nq, k, a.data(), sa.data());
    {
        KnnIndex back = KnnIndex::load(path);
        EXPECT_TRUE(is_mapped(path));
        EXPECT_EQ(back.description(), idx.description());
        EXPECT_EQ(back.size(), n);
        back.search(x.data(), nq, k, b.data(), sb.data());
        EXPECT_EQ(a, b);
        EXPECT_EQ(sa, sb);
        // A loaded index does not know that its vectors came from float16 values, so its graph
        // re-scores them (sgemv instead of sgemm: the same sims to float rounding).
        const KnnGraph g1 = idx.self_graph(x.data(), k), g2 = back.self_graph(x.data(), k);
        EXPECT_EQ(g1.ids, g2.ids);
        ASSERT_EQ(g1.sims.size(), g2.sims.size());
        for (size_t i = 0; i < g1.sims.size(); ++i) EXPECT_NEAR(g1.sims[i], g2.sims[i], kExact);
    }
    EXPECT_FALSE(is_mapped(path)); // unmapped with the index
    fs::remove(path);
}

TEST(KnnIndex, Float32IndexFilesFromBeforeFloat16StillLoad) {
    // IndexOptions::float16 = false writes what vislint wrote before issue 12 (IndexFlatIP,
    // IndexIVFFlat, either behind the PCA): work dirs from then must still answer queries.
    const int d = 64, k = 8;
    const int64_t n = 2000;
    const auto x = low_rank(n, d, 12, 25); // what a PCA to 16 dimensions keeps
    struct Case {
        int64_t exact_max;
        int reduce_dim;
        const char* description;
    };
    for (const Case& c : {Case{50000, 0, "Flat"}, Case{500, 0, "IVF51,Flat nprobe=16"},
                          Case{500, 16, "PCA64->16,IVF51,Flat nprobe=16"}}) {
        IndexOptions opt;
        opt.float16 = false;
        opt.exact_max = c.exact_max;
        opt.reduce_dim = c.reduce_dim;
        opt.reduce_min = 100;
        KnnIndex old = KnnIndex::build(x.data(), n, d, opt);
        EXPECT_EQ(old.description(), c.description);
        const std::string path = temp_path("float32.faiss");
        old.save(path);
        KnnIndex back = KnnIndex::load(path);
        EXPECT_EQ(back.description(), c.description);
        const int64_t nq = 50;
        std::vector<int64_t> a(nq * k), b(nq * k);
        std::vector<float> sa(nq * k), sb(nq * k);
        old.search(x.data(), nq, k, a.data(), sa.data(), rows_of(x, d));
        back.search(x.data(), nq, k, b.data(), sb.data(), rows_of(x, d));
        EXPECT_EQ(a, b) << c.description;
        EXPECT_EQ(sa, sb) << c.description;
        for (int64_t q = 0; q < nq; ++q) {
            EXPECT_EQ(b[q * k], q);
            for (int j = 0; j < k; ++j)
                EXPECT_NEAR(sb[q * k + j], dot(&x[q * d], &x[b[q * k + j] * d], d), 1e-5);
        }
        fs::remove(path);
    }
}

TEST(KnnIndex, TruncatedMappedListsThrowWithPath) {
    // The lists are mapped, not read: a file cut inside them must be refused at load, not
    // fault at the first search.
    const int d = 32;
    const int64_t n = 3000;
    const auto x = clustered(n, d, 20, 0.8f, 26);
    IndexOptions opt;
    opt.exact_max = 500;
    const std::string whole = temp_path("whole.faiss"), path = temp_path("cut.faiss");
    KnnIndex::build(x.data(), n, d, opt).save(whole);
    const auto size = fs::file_size(whole);
    for (double keep : {0.99, 0.6}) {
        fs::copy_file(whole, path, fs::copy_options::overwrite_existing);
        fs::resize_file(path, uintmax_t(double(size) * keep));
        try {
            KnnIndex::load(path);
            FAIL() << "no exception at " << keep;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        }
    }
    fs::remove(path);
    fs::remove(whole);
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
