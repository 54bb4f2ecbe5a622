// kNN graph benchmark: builds the index and the whole self-kNN graph through the production code
// path (index::KnnIndex::build + self_graph) on a synthetic, deterministic clustered mixture, and
// measures recall@k of the graph against exact brute force on random rows.
//
//   knn_bench --n 1000000 --d 256 --k 10 --clusters 1000 --threads 2 [--json out.json]
//   knn_bench --npy WORK/features.npy [--n N] ...   (real embeddings: the first N rows)
//   --reduce-dim R --reduce-min M --candidates C     (IndexOptions; R 0 = no PCA)
//   --round-fp16 1    round the vectors to float16 first, as features.npy holds them (a scan's
//                     input: the float16 index then stores them exactly, no re-scoring)
//   --float32 1       float32 storage (IndexOptions::float16 = false, the format before issue 12)
//   --save FILE       write the index after the graph (time and file size reported)
//   --load-query FILE load FILE (lists memory-mapped) and answer 10 single-vector queries, as
//                     `vislint similar` does; generates only the first rows of the data, so the
//                     RSS reported is the load's. Full-dimension indexes only (no --npy).
//
// Data: `clusters` centres drawn from N(0, I) and normalised; each vector = its centre (uniform
// random cluster) + N(0, (noise^2 / d) I), then L2-normalised. With the default noise 0.8 the
// typical cosine to the own centre is ~0.78, to a random member of the same cluster ~0.61 and to
// another cluster ~0 -- a mixture, not i.i.d. noise (on which no ANN index can beat brute force).
// Generated in blocks with per-block seeds, so the data do not depend on the thread count.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "index/knn_index.h"
#include "store/features.h"
#include "vislint/status.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double peak_rss_mb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0; // Linux: kilobytes
}

struct Args {
    int64_t n = 1000000;
    int d = 256;
    int k = 10;
    int64_t clusters = 1000;
    int threads = 0;
    double noise = 0.8;
    uint64_t seed = 42;
    int64_t queries = 1000;
    int64_t exact_max = -1; // -1 = library default
    int64_t nlist = 0;
    int nprobe = 0;
    int reduce_dim = -1; // -1 = library default
    int64_t reduce_min = -1;
    int candidates = 0;
    std::string npy;
    std::string json;
    bool round_fp16 = false;
    bool float32 = false;
    std::string save;
    std::string load_query;
};

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "knn_bench: %s\nusage: knn_bench [--n N] [--d D] [--k K] [--clusters C] "
                 "[--threads T] [--noise S] [--seed S] [--queries Q] [--exact-max N] "
                 "[--nlist L] [--nprobe P] [--npy FEATURES.npy] [--reduce-dim R] "
                 "[--reduce-min M] [--candidates C] [--round-fp16 0|1] [--float32 0|1] "
                 "[--save FILE] [--load-query FILE] [--json FILE]\n",
                 msg);
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string key = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + key).c_str());
        const char* v = argv[++i];
        if (key == "--n") a.n = std::atoll(v);
        else if (key == "--d") a.d = std::atoi(v);
        else if (key == "--k") a.k = std::atoi(v);
        else if (key == "--clusters") a.clusters = std::atoll(v);
        else if (key == "--threads") a.threads = std::atoi(v);
        else if (key == "--noise") a.noise = std::atof(v);
        else if (key == "--seed") a.seed = std::strtoull(v, nullptr, 10);
        else if (key == "--queries") a.queries = std::atoll(v);
        else if (key == "--exact-max") a.exact_max = std::atoll(v);
        else if (key == "--nlist") a.nlist = std::atoll(v);
        else if (key == "--nprobe") a.nprobe = std::atoi(v);
        else if (key == "--json") a.json = v;
        else if (key == "--npy") a.npy = v;
        else if (key == "--reduce-dim") a.reduce_dim = std::atoi(v);
        else if (key == "--reduce-min") a.reduce_min = std::atoll(v);
        else if (key == "--candidates") a.candidates = std::atoi(v);
        else if (key == "--round-fp16") a.round_fp16 = std::atoi(v) != 0;
        else if (key == "--float32") a.float32 = std::atoi(v) != 0;
        else if (key == "--save") a.save = v;
        else if (key == "--load-query") a.load_query = v;
        else usage(("unknown option " + key).c_str());
    }
    if (a.n < 2 || a.d < 1 || a.k < 1 || a.clusters < 1 || a.queries < 1 || a.threads < 0)
        usage("bad value");
    a.queries = std::min(a.queries, a.n);
    return a;
}

int worker_count(int threads) {
    return threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
}

template <typename F> void parallel_for(int64_t count, int threads, F&& f) {
    std::vector<std::thread> pool;
    const int t = worker_count(threads);
    for (int w = 0; w < t; ++w)
        pool.emplace_back([&, w] {
            for (int64_t i = w; i < count; i += t) f(i);
        });
    for (auto& th : pool) th.join();
}

void normalise(float* v, int d) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += double(v[j]) * v[j];
    const float inv = s > 0 ? float(1.0 / std::sqrt(s)) : 0.f;
    for (int j = 0; j < d; ++j) v[j] *= inv;
}

std::vector<float> make_data(const Args& a) {
    const int d = a.d;
    std::vector<float> centres(size_t(a.clusters) * d);
    std::mt19937_64 rng(a.seed);
    std::normal_distribution<float> g(0.f, 1.f);
    for (auto& c : centres) c = g(rng);
    for (int64_t c = 0; c < a.clusters; ++c) normalise(centres.data() + c * d, d);

    std::vector<float> data(size_t(a.n) * d);
    const int64_t block = 4096, blocks = (a.n + block - 1) / block;
    const float sigma = float(a.noise / std::sqrt(double(d)));
    parallel_for(blocks, a.threads, [&](int64_t b) {
        std::mt19937_64 r(a.seed * 1000003 + uint64_t(b) + 1);
        std::normal_distribution<float> noise(0.f, sigma);
        std::uniform_int_distribution<int64_t> pick(0, a.clusters - 1);
        for (int64_t i = b * block; i < std::min(a.n, (b + 1) * block); ++i) {
            float* v = data.data() + i * d;
            const float* c = centres.data() + pick(r) * d;
            for (int j = 0; j < d; ++j) v[j] = c[j] + noise(r);
            normalise(v, d);
        }
    });
    return data;
}

// Portable SIMD (GCC/Clang vector extension): SSE2 pairs without -march, AVX when enabled.
typedef float v8f __attribute__((vector_size(32)));

float dot(const float* a, const float* b, int d) {
    v8f acc = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= d; j += 8) {
        v8f x, y;
        std::memcpy(&x, a + j, sizeof x);
        std::memcpy(&y, b + j, sizeof y);
        acc += x * y;
    }
    float s = 0;
    for (int l = 0; l < 8; ++l) s += acc[l];
    for (; j < d; ++j) s += a[j] * b[j];
    return s;
}

// Exact top-k (self excluded) of each query row: the database is streamed in cache-sized blocks
// and each worker owns a slice of the queries.
std::vector<std::vector<int64_t>> brute_force(const std::vector<float>& data, const Args& a,
                                              const std::vector<int64_t>& rows) {
    const int d = a.d, k = a.k;
    const int64_t nq = int64_t(rows.size());
    std::vector<std::vector<std::pair<float, int64_t>>> top(nq); // ascending by sim
    const int t = worker_count(a.threads);
    std::vector<std::thread> pool;
    for (int w = 0; w < t; ++w)
        pool.emplace_back([&, w] {
            const int64_t block = 2048;
            for (int64_t b0 = 0; b0 < a.n; b0 += block) {
                const int64_t b1 = std::min(a.n, b0 + block);
                for (int64_t q = w; q < nq; q += t) {
                    auto& h = top[q];
                    const float* qv = data.data() + rows[q] * d;
                    for (int64_t i = b0; i < b1; ++i) {
                        if (i == rows[q]) continue;
                        const float s = dot(qv, data.data() + i * d, d);
                        if (int(h.size()) == k && s <= h.front().first) continue;
                        auto pos = std::lower_bound(h.begin(), h.end(), std::make_pair(s, i));
                        h.insert(pos, {s, i});
                        if (int(h.size()) > k) h.erase(h.begin());
                    }
                }
            }
        });
    for (auto& th : pool) th.join();
    std::vector<std::vector<int64_t>> out(nq);
    for (int64_t q = 0; q < nq; ++q)
        for (auto& p : top[q]) out[q].push_back(p.second);
    return out;
}

} // namespace

// The first a->n rows of a float16 features.npy (a scan's embeddings), as float32; sets a->d.
std::vector<float> load_npy(Args* a) {
    const vislint::store::FeatureReader r(a->npy);
    a->n = std::min<int64_t>(a->n, r.rows());
    a->d = r.dim();
    a->queries = std::min(a->queries, a->n);
    std::vector<int64_t> ids(size_t(a->n));
    for (int64_t i = 0; i < a->n; ++i) ids[size_t(i)] = i;
    std::vector<float> data(size_t(a->n) * a->d);
    r.read(ids.data(), a->n, data.data());
    for (int64_t i = 0; i < a->n; ++i) normalise(data.data() + i * a->d, a->d);
    return data;
}

// --load-query: the cost of `vislint similar` on a saved index (load, then single queries).
int load_query(Args a) {
    a.n = std::min<int64_t>(a.n, 4096); // block 0 of the data: the same rows as the full run
    std::vector<float> data = make_data(a);
    if (a.round_fp16) {
        std::vector<uint16_t> h(data.size());
        vislint::index::encode_fp16(data.data(), data.size(), h.data());
        vislint::index::decode_fp16(h.data(), h.size(), data.data());
    }
    try {
        auto t0 = Clock::now();
        const vislint::index::KnnIndex idx = vislint::index::KnnIndex::load(a.load_query);
        const double load_s = seconds_since(t0);
        const double load_rss = peak_rss_mb();
        if (idx.dim() != a.d) usage("--d does not match the index");
        std::printf("  index              %s (%lld vectors)\n", idx.description().c_str(),
                    (long long)idx.size());
        std::printf("  load               %8.3f s  peak RSS %.0f MB\n", load_s, load_rss);
        std::vector<int64_t> ids(size_t(a.k));
        std::vector<float> sims(size_t(a.k));
        for (int q = 0; q < 10; ++q) {
            t0 = Clock::now();
            idx.search(data.data() + int64_t(q) * a.d, 1, a.k, ids.data(), sims.data());
            const double qs = seconds_since(t0);
            std::printf("  query %d            %8.3f s  top id %lld sim %.6f (self %s)\n", q, qs,
                        (long long)ids[0], sims[0], ids[0] == q ? "first" : "NOT first");
        }
        std::printf("  peak RSS           %8.0f MB\n", peak_rss_mb());
    } catch (const vislint::Error& e) {
        std::fprintf(stderr, "knn_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    if (!a.load_query.empty()) return load_query(a);
    std::vector<float> data;
    if (!a.npy.empty()) {
        try {
            data = load_npy(&a);
        } catch (const vislint::Error& e) {
            std::fprintf(stderr, "knn_bench: %s\n", e.what());
            return 1;
        }
    }
    std::printf("knn_bench: n=%lld d=%d k=%d clusters=%lld noise=%.2f threads=%d\n",
                (long long)a.n, a.d, a.k, (long long)a.clusters, a.noise, worker_count(a.threads));
    const std::string blas = vislint::index::blas_library();
    std::printf("  BLAS               %s\n", blas.c_str());

    auto t0 = Clock::now();
    if (a.npy.empty()) data = make_data(a);
    if (a.round_fp16) {
        std::vector<uint16_t> h(data.size());
        vislint::index::encode_fp16(data.data(), data.size(), h.data());
        vislint::index::decode_fp16(h.data(), h.size(), data.data());
    }
    const double gen_s = seconds_since(t0);
    std::printf("  data %s     %8.1f s\n", a.npy.empty() ? "generated" : "loaded   ", gen_s);

    vislint::index::IndexOptions opt;
    if (a.exact_max >= 0) opt.exact_max = a.exact_max;
    opt.nlist = a.nlist;
    opt.nprobe = a.nprobe;
    opt.threads = a.threads;
    if (a.reduce_dim >= 0) opt.reduce_dim = a.reduce_dim;
    if (a.reduce_min >= 0) opt.reduce_min = a.reduce_min;
    opt.candidates = a.candidates;
    opt.float16 = !a.float32;

    // Phase times come from the stage changes the library reports.
    std::map<std::string, Clock::time_point> first, last;
    vislint::index::ProgressFn progress = [&](const char* stage, uint64_t, uint64_t) {
        auto now = Clock::now();
        first.emplace(stage, now);
        last[stage] = now;
        return true;
    };
    auto span = [&](const char* stage) {
        if (!first.count(stage)) return 0.0;
        return std::chrono::duration<double>(last[stage] - first[stage]).count();
    };

    try {
        t0 = Clock::now();
        vislint::index::KnnIndex index =
            vislint::index::KnnIndex::build(data.data(), a.n, a.d, opt, progress);
        const double build_s = seconds_since(t0);
        const double train_s = span("knn.train"), add_s = span("knn.add");
        const double reduce_s = span("knn.reduce");
        std::printf("  index              %s\n", index.description().c_str());
        std::printf("  build              %8.1f s  (PCA %.1f s, train %.1f s, add %.1f s)\n",
                    build_s, reduce_s, train_s, add_s);

        t0 = Clock::now();
        const vislint::index::KnnGraph g = index.self_graph(data.data(), a.k, progress);
        const double graph_s = seconds_since(t0);
        const double rss_mb = peak_rss_mb();
        std::printf("  self graph         %8.1f s\n", graph_s);
        std::printf("  build + self graph %8.1f s\n", build_s + graph_s);
        std::printf("  peak RSS           %8.0f MB (data %.0f MB)\n", rss_mb,
                    double(data.size()) * 4 / (1 << 20));
        if (!a.save.empty()) {
            t0 = Clock::now();
            index.save(a.save);
            std::FILE* f = std::fopen(a.save.c_str(), "rb");
            long bytes = -1;
            if (f && std::fseek(f, 0, SEEK_END) == 0) bytes = std::ftell(f);
            if (f) std::fclose(f);
            std::printf("  save               %8.1f s  %.0f MB\n", seconds_since(t0),
                        double(bytes) / (1 << 20));
        }

        std::vector<int64_t> rows(a.n);
        for (int64_t i = 0; i < a.n; ++i) rows[i] = i;
        std::mt19937_64 rng(a.seed + 7);
        std::shuffle(rows.begin(), rows.end(), rng);
        rows.resize(a.queries);
        t0 = Clock::now();
        const auto truth = brute_force(data, a, rows);
        const double brute_s = seconds_since(t0);
        int64_t hits = 0, total = 0;
        double max_sim_err = 0; // graph similarity vs the exact dot product at full dimension
        for (size_t q = 0; q < rows.size(); ++q) {
            const int64_t* got = g.row_ids(rows[q]);
            for (int64_t id : truth[q]) {
                hits += std::count(got, got + a.k, id);
                ++total;
            }
            for (int j = 0; j < a.k; ++j)
                if (got[j] >= 0)
                    max_sim_err = std::max<double>(
                        max_sim_err, std::abs(g.row_sims(rows[q])[j] -
                                              dot(data.data() + rows[q] * a.d,
                                                  data.data() + got[j] * a.d, a.d)));
        }
        const double recall = double(hits) / double(std::max<int64_t>(total, 1));
        std::printf("  recall@%d           %8.4f  (%lld queries, brute force %.1f s)\n", a.k,
                    recall, (long long)rows.size(), brute_s);
        std::printf("  max |sim error|    %8.2g\n", max_sim_err);

        if (!a.json.empty()) {
            std::FILE* f = std::fopen(a.json.c_str(), "w");
            if (!f) {
                std::fprintf(stderr, "knn_bench: cannot write %s\n", a.json.c_str());
                return 1;
            }
            std::fprintf(f,
                         "{\n  \"n\": %lld, \"d\": %d, \"k\": %d, \"clusters\": %lld, "
                         "\"noise\": %.3f, \"threads\": %d,\n  \"index\": \"%s\",\n"
                         "  \"build_s\": %.2f, \"reduce_s\": %.2f, \"train_s\": %.2f, \"add_s\": %.2f,\n"
                         "  \"self_graph_s\": %.2f, \"total_s\": %.2f,\n"
                         "  \"recall_at_k\": %.4f, \"recall_queries\": %lld, \"max_sim_error\": %.3g,\n"
                         "  \"source\": \"%s\",\n"
                         "  \"peak_rss_mb\": %.0f, \"data_mb\": %.0f,\n  \"blas\": \"%s\"\n}\n",
                         (long long)a.n, a.d, a.k, (long long)a.clusters, a.noise,
                         worker_count(a.threads), index.description().c_str(), build_s, reduce_s,
                         train_s, add_s, graph_s, build_s + graph_s, recall,
                         (long long)rows.size(), max_sim_err,
                         a.npy.empty() ? "synthetic" : a.npy.c_str(), rss_mb, double(data.size()) * 4 / (1 << 20), blas.c_str());
            std::fclose(f);
        }
    } catch (const vislint::Error& e) {
        std::fprintf(stderr, "knn_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
