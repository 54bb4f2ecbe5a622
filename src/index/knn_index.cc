#include "index/knn_index.h"

#include <dlfcn.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <numeric>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <utility>

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <faiss/utils/Heap.h>

#include "vislint/status.h"

// Fortran BLAS, as faiss itself calls it (libblas.so.3: OpenBLAS through Debian's alternatives).
extern "C" int sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                      const int* k, const float* alpha, const float* a, const int* lda,
                      const float* b, const int* ldb, const float* beta, float* c, const int* ldc);
extern "C" int ssyrk_(const char* uplo, const char* trans, const int* n, const int* k,
                      const float* alpha, const float* a, const int* lda, const float* beta,
                      float* c, const int* ldc);
// LAPACK (liblapack.so.3: OpenBLAS's through the same alternatives), linked by faiss too.
extern "C" int ssyevr_(const char* jobz, const char* range, const char* uplo, const int* n,
                       float* a, const int* lda, const float* vl, const float* vu, const int* il,
                       const int* iu, const float* abstol, int* m, float* w, float* z,
                       const int* ldz, int* isuppz, float* work, const int* lwork, int* iwork,
                       const int* liwork, int* info);
extern "C" float sdot_(const int* n, const float* x, const int* incx, const float* y,
                       const int* incy);
extern "C" int sgemv_(const char* trans, const int* m, const int* n, const float* alpha,
                      const float* a, const int* lda, const float* x, const int* incx,
                      const float* beta, float* y, const int* incy);

namespace vislint::index {
namespace {

using MinHeap = faiss::CMin<float, int64_t>; // keeps the k largest similarities

constexpr uint64_t kSampleSeed = 0x766973'6c696e74ull; // "vislint"
constexpr int kKmeansSeed = 1234;
// Spherical k-means on embeddings settles within a few iterations; faiss's default of 25 costs
// 2.5x the training time for no recall we could measure (bench/knn_bench.cc).
constexpr int kKmeansIters = 10;
constexpr int64_t kTrainPerList = 40; // faiss asks for >= 39 points per centroid
constexpr int64_t kMinPerList = 39;
constexpr int64_t kAddBatch = 65536;
// Rows fetched from a RowSource at a time (full dimension: 1024 x 1280-d is 5 MB).
constexpr int64_t kFetchBatch = 1024;
// PCA training rows: the 1280 x 1280 second-moment matrix is well estimated from 16 k samples.
constexpr int64_t kPcaSample = 16384;
// Score tiles: kQueryTile x kBaseTile similarities (16 MB) per BLAS call.
constexpr int kQueryTile = 1024;
constexpr int kBaseTile = 4096;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// faiss's loops use OpenMP and its BLAS calls use OpenBLAS's own pthread pool. libgomp workers
// busy-wait after each parallel region (OMP_WAIT_POLICY unset) and starve the OpenBLAS threads
// of the next BLAS call: k-means training ran 4x slower on two cores. All faiss calls made here
// therefore run with one OpenMP thread and take their parallelism from BLAS. omp_set_num_threads
// only changes the calling thread's setting; the caller's value is restored.
class ScopedOmpThreads {
public:
    explicit ScopedOmpThreads(int threads) : saved_(omp_get_max_threads()) {
        omp_set_num_threads(threads);
    }
    ~ScopedOmpThreads() { omp_set_num_threads(saved_); }
    ScopedOmpThreads(const ScopedOmpThreads&) = delete;
    ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

private:
    int saved_;
};

void set_blas_threads(int threads) {
    if (threads <= 0) return;
    using SetFn = void (*)(int);
    if (auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
        set(threads);
}

// ---- float16 storage -------------------------------------------------------------------------
// The index stores its vectors as IEEE binary16 (faiss's ScalarQuantizer::QT_fp16 layout: one
// little-endian uint16 per component), decoded to float32 tile by tile before each sgemm.
// Debian's libfaiss is baseline x86-64, so the conversions are done here: F16C (8 values per
// instruction) when the CPU has it, checked at run time, else the portable bit manipulation
// below, which gives the same bits (round to nearest even, subnormals kept, NaN stays NaN).

uint16_t half_from_float_portable(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    uint32_t h;
    if (x >= 0x47800000u) { // |f| >= 2^16: infinity, or NaN (kept quiet)
        h = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (x < 0x38800000u) { // below 2^-14: a subnormal half or zero
        // Adding 0.5 aligns the 10 mantissa bits at the bottom of the float, and the FPU's
        // round-to-nearest-even does the rounding.
        float v;
        std::memcpy(&v, &x, 4);
        v += 0.5f;
        uint32_t b;
        std::memcpy(&b, &v, 4);
        h = b - 0x3f000000u;
    } else {
        const uint32_t odd = (x >> 13) & 1u;
        x += 0xc8000fffu + odd; // exponent rebias (-112 << 23) + rounding; overflow -> infinity
        h = x >> 13;
    }
    return uint16_t(sign | h);
}

float half_to_float_portable(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    float f;
    if (e == 0) {
        f = float(m) * 5.9604644775390625e-8f; // m * 2^-24, exact
        uint32_t b;
        std::memcpy(&b, &f, 4);
        b |= sign;
        std::memcpy(&f, &b, 4);
        return f;
    }
    const uint32_t b = sign | (e == 0x1f ? 0x7f800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
    std::memcpy(&f, &b, 4);
    return f;
}

__attribute__((target("avx,f16c"))) void to_half_f16c(const float* x, size_t n, uint16_t* out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
    }
    for (; i < n; ++i) out[i] = half_from_float_portable(x[i]);
}

// `h` may be unaligned (a list in a memory-mapped file), so it is read bytewise.
__attribute__((target("avx,f16c"))) void from_half_f16c(const uint8_t* h, size_t n, float* out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(
                                      reinterpret_cast<const __m128i*>(h + 2 * i))));
    for (; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, h + 2 * i, 2);
        out[i] = half_to_float_portable(v);
    }
}

bool cpu_has_f16c() {
    static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
    return has;
}

void encode_half(const float* x, size_t n, uint8_t* out, bool portable = false) {
    if (!portable && cpu_has_f16c()) {
        std::vector<uint16_t> tmp; // out may be unaligned
        if (reinterpret_cast<uintptr_t>(out) % 2 == 0)
            return to_half_f16c(x, n, reinterpret_cast<uint16_t*>(out));
        tmp.resize(n);
        to_half_f16c(x, n, tmp.data());
        std::memcpy(out, tmp.data(), 2 * n);
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        const uint16_t v = half_from_float_portable(x[i]);
        std::memcpy(out + 2 * i, &v, 2);
    }
}

void decode_half(const uint8_t* h, size_t n, float* out, bool portable = false) {
    if (!portable && cpu_has_f16c()) return from_half_f16c(h, n, out);
    for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, h + 2 * i, 2);
        out[i] = half_to_float_portable(v);
    }
}

// faiss's what() starts with the throwing function and source location; users only need msg.
std::string faiss_reason(const std::exception& e) {
    if (auto* fe = dynamic_cast<const faiss::FaissException*>(&e)) return fe->msg;
    if (dynamic_cast<const std::bad_alloc*>(&e)) return "out of memory";
    return e.what();
}

// The index/ boundary: everything faiss (or the allocator) throws becomes a vislint::Error.
template <typename F> auto guarded(const std::string& what, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const vislint::Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(what + ": " + faiss_reason(e));
    }
}

void report(const ProgressFn& progress, const char* stage, uint64_t done, uint64_t total) {
    if (progress && !progress(stage, done, total))
        throw Cancelled(std::string("cancelled during ") + stage);
}

int64_t auto_nlist(int64_t n) {
    int64_t nlist = std::llround(4.0 * std::sqrt(double(n)));
    nlist = std::clamp<int64_t>(nlist, 256, 65536);
    return std::min(nlist, n / kMinPerList);
}

int64_t auto_nprobe(int64_t nlist) {
    return std::min<int64_t>(nlist, std::clamp<int64_t>(nlist / 128, 16, 32));
}

// Knuth's selection sampling: m of n row indices, ascending, the same for the same (n, m).
std::vector<int64_t> sample_rows(int64_t n, int64_t m) {
    std::vector<int64_t> rows;
    rows.reserve(size_t(m));
    std::mt19937_64 rng(kSampleSeed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int64_t i = 0; i < n && int64_t(rows.size()) < m; ++i)
        if (double(n - i) * u(rng) < double(m - int64_t(rows.size()))) rows.push_back(i);
    return rows;
}

// Uncentred PCA (knn_index.h): the projection onto the top `dr` eigenvectors of the second-moment
// matrix of the m x d sample x, best first. Only those dr eigenpairs are computed (ssyevr's
// subset mode: 0.12 s at 1280 -> 256, where faiss's PCAMatrix computes all 1280 in 3 s).
std::unique_ptr<faiss::LinearTransform> uncentred_pca(const float* x, int64_t m, int d, int dr) {
    const int mi = int(m);
    const float one = 1.f, zero = 0.f;
    // Column-major, x is d x m; C = x x^T (d x d), upper triangle.
    std::vector<float> c(size_t(d) * d);
    ssyrk_("U", "N", &d, &mi, &one, x, &d, &zero, c.data(), &d);
    const int il = d - dr + 1, iu = d;
    const float vl = 0.f, vu = 0.f, abstol = 0.f;
    int found = 0, info = 0, lwork = -1, liwork = -1, iwork_size = 0;
    float work_size = 0.f;
    std::vector<float> w(static_cast<size_t>(d)), z(size_t(d) * dr);
    std::vector<int> isuppz(size_t(2) * d);
    ssyevr_("V", "I", "U", &d, c.data(), &d, &vl, &vu, &il, &iu, &abstol, &found, w.data(),
            z.data(), &d, isuppz.data(), &work_size, &lwork, &iwork_size, &liwork, &info);
    lwork = int(work_size);
    liwork = iwork_size;
    std::vector<float> work(size_t(std::max(lwork, 1)));
    std::vector<int> iwork(size_t(std::max(liwork, 1)));
    if (info == 0)
        ssyevr_("V", "I", "U", &d, c.data(), &d, &vl, &vu, &il, &iu, &abstol, &found, w.data(),
                z.data(), &d, isuppz.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
    if (info != 0 || found != dr)
        throw Error("kNN index: PCA failed (LAPACK ssyevr info " + std::to_string(info) + ")");
    auto lt = std::make_unique<faiss::LinearTransform>(d, dr, false);
    lt->A.resize(size_t(dr) * d);
    for (int r = 0; r < dr; ++r) // eigenvalues come ascending; row r = r-th largest
        std::copy_n(z.data() + size_t(dr - 1 - r) * d, d, lt->A.data() + size_t(r) * d);
    lt->is_trained = true;
    return lt;
}

// The k best of `best` (similarity, id), best first, into out (k each; padding -1 / -infinity).
// Equal similarities go by id, so the order does not depend on the reduction.
void emit_best(std::vector<std::pair<float, int64_t>>* best, int k, int64_t* out_ids,
               float* out_sims) {
    const int keep = std::min(k, int(best->size()));
    std::partial_sort(best->begin(), best->begin() + keep, best->end(),
                      [](const auto& a, const auto& b) {
                          return a.first != b.first ? a.first > b.first : a.second < b.second;
                      });
    for (int j = 0; j < k; ++j) {
        out_ids[j] = j < keep ? (*best)[size_t(j)].second : -1;
        out_sims[j] = j < keep ? (*best)[size_t(j)].first : kNegInf;
    }
}

// Per-query top-k min-heaps (worst kept result on top), nq x k.
// Rows ids[0..n) of `rows` (d floats each), fetched kFetchBatch at a time through `full` and
// projected by `pca` when set, into out (n x the indexed dimension).
void fetch_rows(const RowSource& rows, const int64_t* ids, int64_t n, int d,
                const faiss::LinearTransform* pca, float* out, std::vector<float>* full) {
    const int di = pca ? pca->d_out : d;
    for (int64_t i0 = 0; i0 < n; i0 += kFetchBatch) {
        const int64_t m = std::min(kFetchBatch, n - i0);
        if (!pca) {
            rows(ids + i0, m, out + i0 * di);
            continue;
        }
        if (full->size() < size_t(m) * d) full->resize(size_t(m) * d);
        rows(ids + i0, m, full->data());
        pca->apply_noalloc(m, full->data(), out + i0 * di);
    }
}

struct TopK {
    int k;
    std::vector<float> sims;
    std::vector<int64_t> ids;
    TopK(int64_t nq, int k) : k(k), sims(size_t(nq) * k), ids(size_t(nq) * k) {
        for (int64_t r = 0; r < nq; ++r)
            faiss::heap_heapify<MinHeap>(k, sims.data() + r * k, ids.data() + r * k);
    }
    // Sorts each row best first into the caller's arrays; padding -1 / -inf.
    void emit(int64_t nq, int64_t* out_ids, float* out_sims) {
        for (int64_t r = 0; r < nq; ++r) {
            float* s = sims.data() + r * k;
            int64_t* i = ids.data() + r * k;
            faiss::heap_reorder<MinHeap>(k, s, i);
            for (int j = 0; j < k; ++j) {
                out_ids[r * k + j] = i[j];
                out_sims[r * k + j] = i[j] < 0 ? kNegInf : s[j];
            }
        }
    }
};

// Whether any of x[0..15] > v. GCC/Clang vector extensions: SSE2 / NEON without -march flags.
typedef float V4f __attribute__((vector_size(16)));
typedef int32_t V4i __attribute__((vector_size(16)));
inline bool any_greater16(const float* x, float v) {
    const V4f w = {v, v, v, v};
    V4f a, b, c, e;
    std::memcpy(&a, x, 16);
    std::memcpy(&b, x + 4, 16);
    std::memcpy(&c, x + 8, 16);
    std::memcpy(&e, x + 12, 16);
    const V4i m = (a > w) | (b > w) | (c > w) | (e > w);
    return (m[0] | m[1] | m[2] | m[3]) != 0;
}

// Scores m query vectors (q, m x d) against s base vectors (base, s x d, ids base_ids[j] or
// base_first + j) with BLAS, tile by tile, and offers every score to the heap of the query's
// row rows[i] in `top`. A base vector whose id equals self[rows[i]] is skipped: that is how
// self_graph() removes the query itself, by id, whatever its rank among exact duplicates.
//
// Why not faiss's own search: Debian's libfaiss is built for baseline x86-64, so its
// per-vector distance loops run at ~2 GMAC/s per core, while OpenBLAS's sgemm uses the AVX2
// units it finds at run time; scoring tiles as matrix products made the IVF self-graph 5x faster
// (knn_index.h).
// A block of stored vectors: float32 (indexes from before issue 12) or float16 codes.
struct Vectors {
    const uint8_t* data = nullptr;
    bool half = false;
};

class Scorer {
public:
    Scorer(int d, TopK* top, const int64_t* self) : d_(d), top_(top), self_(self) {}

    // float16 lists (and misaligned float32 ones from a memory-mapped file) are decoded one base
    // tile at a time into a reusable buffer: 4096 x d floats, so the decode stays in cache and
    // costs one pass over the tile against the m x 4096 x d multiply-adds of the product.
    void score(const float* q, const int32_t* rows, int64_t m, Vectors base,
               const int64_t* base_ids, int64_t base_first, int64_t s) {
        const size_t row_bytes = size_t(d_) * (base.half ? 2 : 4);
        for (int64_t j0 = 0; j0 < s; j0 += kBaseTile) {
            const int sb = int(std::min<int64_t>(kBaseTile, s - j0));
            const uint8_t* src = base.data + size_t(j0) * row_bytes;
            const float* tile_base;
            if (base.half) {
                decoded_.resize(size_t(sb) * d_);
                decode_half(src, size_t(sb) * d_, decoded_.data());
                tile_base = decoded_.data();
            } else if (reinterpret_cast<uintptr_t>(src) % alignof(float) != 0) {
                decoded_.resize(size_t(sb) * d_);
                std::memcpy(decoded_.data(), src, size_t(sb) * row_bytes);
                tile_base = decoded_.data();
            } else {
                tile_base = reinterpret_cast<const float*>(src);
            }
            score_tile(q, rows, m, tile_base, base_ids, base_first, j0, sb);
        }
    }
    void score(const float* q, const int32_t* rows, int64_t m, const float* base,
               const int64_t* base_ids, int64_t base_first, int64_t s) {
        score(q, rows, m, Vectors{reinterpret_cast<const uint8_t*>(base), false}, base_ids,
              base_first, s);
    }

private:
    // base: vectors j0 .. j0 + sb of the block, as floats.
    void score_tile(const float* q, const int32_t* rows, int64_t m, const float* base,
                    const int64_t* base_ids, int64_t base_first, int64_t j0, int sb) {
        const float one = 1.f, zero = 0.f;
        const int k = top_->k;
        for (int64_t i0 = 0; i0 < m; i0 += kQueryTile) {
            const int mb = int(std::min<int64_t>(kQueryTile, m - i0));
            if (tile_.size() < size_t(mb) * sb) tile_.resize(size_t(mb) * sb);
            // Row-major tile[i][j] = <q_i, base_j>: column-major base^T x q.
            sgemm_("T", "N", &sb, &mb, &d_, &one, base, &d_, q + i0 * d_, &d_, &zero,
                   tile_.data(), &sb);
            for (int i = 0; i < mb; ++i) {
                const int32_t r = rows[i0 + i];
                float* hs = top_->sims.data() + int64_t(r) * k;
                int64_t* hi = top_->ids.data() + int64_t(r) * k;
                const int64_t self = self_ ? self_[r] : -1;
                const float* t = tile_.data() + int64_t(i) * sb;
                auto offer = [&](int j) {
                    if (!(t[j] > hs[0])) return;
                    const int64_t id = base_ids ? base_ids[j0 + j] : base_first + j0 + j;
                    if (id != self) faiss::heap_replace_top<MinHeap>(k, hs, hi, t[j], id);
                };
                // Once the heap is full almost no score beats its worst entry: test 16 at
                // a time with SIMD compares, look closer only when one does.
                int j = 0;
                for (; j + 16 <= sb; j += 16) {
                    if (any_greater16(t + j, hs[0]))
                        for (int u = 0; u < 16; ++u) offer(j + u);
                }
                for (; j < sb; ++j) offer(j);
            }
        }
    }

    int d_;
    TopK* top_;
    const int64_t* self_;
    std::vector<float> tile_, decoded_;
};

} // namespace

void encode_fp16(const float* x, size_t n, uint16_t* out, bool portable) {
    encode_half(x, n, reinterpret_cast<uint8_t*>(out), portable);
}

void decode_fp16(const uint16_t* h, size_t n, float* out, bool portable) {
    decode_half(reinterpret_cast<const uint8_t*>(h), n, out, portable);
}

bool fp16_hardware() { return cpu_has_f16c(); }

std::string blas_library() {
    using ConfigFn = char* (*)();
    if (auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
        return config(); // "OpenBLAS 0.3.21 ... Haswell MAX_THREADS=64"
    return "reference or unknown BLAS (slow: install libopenblas0-pthread)";
}

struct KnnIndex::Impl {
    std::unique_ptr<faiss::Index> index; // what save() writes: `inner`, or PCA + `inner`
    faiss::Index* inner = nullptr;       // the index over the (reduced) vectors
    faiss::IndexFlat* flat = nullptr;    // exactly one of flat / flat16 / ivf is set, == inner
    faiss::IndexScalarQuantizer* flat16 = nullptr; // exact, float16 codes
    faiss::IndexIVF* ivf = nullptr;
    bool half = false; // the stored vectors are float16 (flat16, or IVF with SQfp16 lists)
    // Every vector added was a float16 value (features.npy rows are), so the stored codes are
    // the vectors themselves and the similarities need no re-scoring. Unknown after load().
    bool lossless = false;
    const faiss::LinearTransform* pca = nullptr; // set when reduced
    int candidates = 0;                          // IndexOptions::candidates
    int64_t rescore_bytes = 0;                   // IndexOptions::rescore_bytes

    int full_dim() const { return pca ? pca->d_in : inner->d; }
    // Results are re-scored with the full vectors: always when reduced, and when float16
    // storage may have rounded the vectors (they did not all come from a float16 source).
    bool rescores() const { return pca || (half && !lossless); }
    Vectors flat_vectors() const {
        if (flat16) return {flat16->codes.data(), true};
        return {reinterpret_cast<const uint8_t*>(flat->get_xb()), false};
    }
    // Candidates searched per query before re-scoring to k: in a reduced index (the PCA moves
    // similarities by ~0.01), or in a full-dimension one whose float16 vectors were rounded
    // (by < 1e-3: twice k is plenty for the neighbours near rank k).
    int candidates_for(int k) const {
        if (!pca) return 2 * k;
        return std::max(k, candidates > 0 ? candidates : 3 * k);
    }
    // x (n x full_dim) in the indexed dimension: x itself, or its projection in `buf`.
    const float* project(const float* x, int64_t n, std::vector<float>* buf) const {
        if (!pca) return x;
        buf->resize(size_t(n) * inner->d);
        pca->apply_noalloc(n, x, buf->data());
        return buf->data();
    }

    // Appends the n vectors of `rows` (ids size() .. size() + n - 1), projected by `pca` when
    // set, in batches; keeps `lossless` true only while every vector survives float16.
    void add_rows(const RowSource& rows, int64_t n, const faiss::LinearTransform* pca,
                  const ProgressFn& progress);
    // Top-k of nq queries (indexed dimension) into `top`. self: per query, an id to skip.
    void search(const float* x, int64_t nq, TopK* top, const int64_t* self) const;
    // IVF: the `nprobe` best lists of each query (exact: the centroids are a Flat index).
    TopK coarse_assign(const float* x, int64_t nq, int nprobe) const;
    // Reduced index: the k best of each query's candidates (nq x kc ids, -1 = none) by their
    // exact similarity at full dimension; q_full holds the queries (nq x full_dim).
    void rescore(const float* q_full, int64_t nq, const int64_t* cand, int kc,
                 const RowSource& base, int k, int64_t* out_ids, float* out_sims) const;
    // The self-graph's re-scoring pass: cand holds every vector's kc candidates (-1 = none).
    // Fills g (n x k) with the k best of each by exact similarity at full dimension.
    void rescore_graph(const RowSource& rows, const std::vector<int32_t>& cand, int kc,
                       KnnGraph* g, const ProgressFn& progress) const;
};

void KnnIndex::Impl::rescore(const float* q_full, int64_t nq, const int64_t* cand, int kc,
                             const RowSource& base, int k, int64_t* out_ids,
                             float* out_sims) const {
    const int d = full_dim();
    const int one_i = 1;
    const float one = 1.f, zero = 0.f;
    std::vector<int64_t> ids;
    std::vector<float> rows, sims;
    std::vector<std::pair<float, int64_t>> best;
    for (int64_t i = 0; i < nq; ++i) {
        const int64_t* c = cand + i * kc;
        ids.assign(c, c + kc);
        ids.erase(std::remove(ids.begin(), ids.end(), int64_t(-1)), ids.end());
        const int m = int(ids.size());
        rows.resize(size_t(m) * d);
        sims.resize(size_t(m));
        if (m > 0) {
            base(ids.data(), m, rows.data());
            // sims = rows (m x d, row-major = d x m column-major)^T q
            sgemv_("T", &d, &m, &one, rows.data(), &d, q_full + i * d, &one_i, &zero,
                   sims.data(), &one_i);
        }
        best.clear();
        for (int j = 0; j < m; ++j) best.emplace_back(sims[size_t(j)], ids[size_t(j)]);
        emit_best(&best, k, out_ids + i * k, out_sims + i * k);
    }
}

void KnnIndex::Impl::rescore_graph(const RowSource& rows, const std::vector<int32_t>& cand,
                                   int kc, KnnGraph* g, const ProgressFn& progress) const {
    const int d = full_dim();
    const int k = g->k;
    const int64_t n = g->n;
    const int one = 1;
    // Query rows held at a time (float32); each block then streams its candidates' rows in
    // ascending id order, so the base is read sequentially once per block, not at random.
    const int64_t fit = std::max<int64_t>(kFetchBatch, rescore_bytes / (int64_t(d) * 4));
    const int64_t block = std::min({n, fit, int64_t(INT32_MAX) / kc});
    std::vector<float> q(size_t(block) * d), c(size_t(kFetchBatch) * d), s;
    std::vector<uint64_t> keys; // candidate id << 32 | slot (query in block * kc + rank)
    std::vector<int64_t> ids, uniq;
    std::vector<std::pair<float, int64_t>> best;
    report(progress, "knn.rescore", 0, uint64_t(n));
    for (int64_t b0 = 0; b0 < n; b0 += block) {
        const int64_t m = std::min(block, n - b0);
        ids.resize(size_t(m));
        std::iota(ids.begin(), ids.end(), b0);
        for (int64_t i0 = 0; i0 < m; i0 += kFetchBatch)
            rows(ids.data() + i0, std::min(kFetchBatch, m - i0), q.data() + i0 * d);
        keys.clear();
        const int32_t* cb = cand.data() + b0 * kc;
        for (int64_t i = 0; i < m * kc; ++i)
            if (cb[i] >= 0) keys.push_back(uint64_t(cb[i]) << 32 | uint64_t(i));
        std::sort(keys.begin(), keys.end());
        s.assign(size_t(m) * kc, kNegInf);
        for (size_t e = 0, chunks = 0; e < keys.size(); ++chunks) {
            // The next kFetchBatch distinct candidates and the slots that name them.
            uniq.clear();
            size_t e1 = e;
            for (; e1 < keys.size(); ++e1) {
                const int64_t id = int64_t(keys[e1] >> 32);
                if (uniq.empty() || uniq.back() != id) {
                    if (int64_t(uniq.size()) == kFetchBatch) break;
                    uniq.push_back(id);
                }
            }
            rows(uniq.data(), int64_t(uniq.size()), c.data());
            for (size_t j = e, u = 0; j < e1; ++j) {
                while (uniq[u] != int64_t(keys[j] >> 32)) ++u;
                const uint32_t slot = uint32_t(keys[j]);
                s[slot] = sdot_(&d, q.data() + size_t(slot / uint32_t(kc)) * d, &one,
                                c.data() + u * size_t(d), &one);
            }
            e = e1;
            if (chunks % 64 == 63)
                report(progress, "knn.rescore",
                       uint64_t(b0 + int64_t(double(m) * double(e) / double(keys.size()))),
                       uint64_t(n));
        }
        for (int64_t i = 0; i < m; ++i) {
            best.clear();
            for (int j = 0; j < kc; ++j)
                if (cb[i * kc + j] >= 0) best.emplace_back(s[size_t(i * kc + j)], cb[i * kc + j]);
            emit_best(&best, k, g->ids.data() + (b0 + i) * k, g->sims.data() + (b0 + i) * k);
        }
        report(progress, "knn.rescore", uint64_t(b0 + m), uint64_t(n));
    }
}

void KnnIndex::Impl::add_rows(const RowSource& rows, int64_t n, const faiss::LinearTransform* pca,
                              const ProgressFn& progress) {
    const int d = pca ? pca->d_in : inner->d;
    const int di = inner->d;
    const int64_t first = inner->ntotal;
    report(progress, "knn.add", 0, uint64_t(n));
    std::vector<int64_t> ids;
    std::vector<uint8_t> codes;
    std::vector<float> full, x, back;
    const size_t code_size = size_t(di) * 2;
    for (int64_t start = 0; start < n; start += kAddBatch) {
        const int64_t nb = std::min(kAddBatch, n - start);
        ids.resize(size_t(nb));
        for (int64_t i = 0; i < nb; ++i) ids[size_t(i)] = first + start + i;
        x.resize(size_t(nb) * di);
        fetch_rows(rows, ids.data(), nb, d, pca, x.data(), &full);
        if (!half) {
            guarded("cannot add to kNN index", [&] {
                if (!ivf) return inner->add(nb, x.data());
                const TopK list = coarse_assign(x.data(), nb, 1);
                ivf->add_core(nb, x.data(), ids.data(), list.ids.data());
            });
            report(progress, "knn.add", uint64_t(start + nb), uint64_t(n));
            continue;
        }
        codes.resize(size_t(nb) * code_size);
        encode_half(x.data(), x.size(), codes.data());
        if (lossless) {
            back.resize(x.size());
            decode_half(codes.data(), x.size(), back.data());
            lossless = std::memcmp(back.data(), x.data(), x.size() * sizeof(float)) == 0;
        }
        guarded("cannot add to kNN index", [&] {
            if (!ivf) {
                flat16->codes.insert(flat16->codes.end(), codes.begin(), codes.end());
                flat16->ntotal += nb;
                return;
            }
            // The exact BLAS assignment the searches use, so a vector lands in its best list.
            const TopK list = coarse_assign(x.data(), nb, 1);
            for (int64_t i = 0; i < nb; ++i)
                ivf->invlists->add_entry(size_t(list.ids[size_t(i)]), ids[size_t(i)],
                                         codes.data() + size_t(i) * code_size);
            ivf->ntotal += nb;
        });
        report(progress, "knn.add", uint64_t(start + nb), uint64_t(n));
    }
    if (index && index.get() != inner) index->ntotal = inner->ntotal; // the PCA wrapper's count
}

TopK KnnIndex::Impl::coarse_assign(const float* x, int64_t nq, int nprobe) const {
    auto* centroids = dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer);
    if (!centroids) throw Error("kNN index: unsupported coarse quantizer");
    const int d = inner->d;
    TopK coarse(nq, nprobe);
    Scorer scorer(d, &coarse, nullptr);
    std::vector<int32_t> rows(size_t(std::min<int64_t>(nq, kQueryTile)));
    for (int64_t i0 = 0; i0 < nq; i0 += kQueryTile) {
        const int64_t m = std::min<int64_t>(kQueryTile, nq - i0);
        for (int64_t i = 0; i < m; ++i) rows[i] = int32_t(i0 + i);
        scorer.score(x + i0 * d, rows.data(), m, centroids->get_xb(), nullptr, 0,
                     centroids->ntotal);
    }
    return coarse;
}

void KnnIndex::Impl::search(const float* x, int64_t nq, TopK* top, const int64_t* self) const {
    const int d = inner->d;
    std::vector<int32_t> rows(size_t(std::min<int64_t>(nq, kQueryTile)));
    Scorer scorer(d, top, self);
    if (!ivf) {
        for (int64_t i0 = 0; i0 < nq; i0 += kQueryTile) {
            const int64_t m = std::min<int64_t>(kQueryTile, nq - i0);
            for (int64_t i = 0; i < m; ++i) rows[i] = int32_t(i0 + i);
            scorer.score(x + i0 * d, rows.data(), m, flat_vectors(), nullptr, 0, inner->ntotal);
        }
        return;
    }

    const int64_t nlist = int64_t(ivf->nlist);
    const int nprobe = int(std::min<int64_t>(int64_t(ivf->nprobe), nlist));
    const TopK coarse = coarse_assign(x, nq, nprobe);

    // Group the (query, list) pairs by list, then score each list against all the queries
    // that probe it at once: one matrix product per list instead of one dot product per pair.
    std::vector<int64_t> start(size_t(nlist) + 1, 0);
    for (int64_t l : coarse.ids)
        if (l >= 0) ++start[size_t(l) + 1];
    for (int64_t l = 0; l < nlist; ++l) start[l + 1] += start[l];
    std::vector<int32_t> by_list(static_cast<size_t>(start[nlist]));
    {
        std::vector<int64_t> fill(start.begin(), start.end() - 1);
        for (int64_t r = 0; r < nq; ++r)
            for (int p = 0; p < nprobe; ++p) {
                const int64_t l = coarse.ids[size_t(r) * nprobe + p];
                if (l >= 0) by_list[size_t(fill[l]++)] = int32_t(r);
            }
    }
    std::vector<float> gathered;
    std::vector<int64_t> aligned_ids;
    const faiss::InvertedLists* lists = ivf->invlists;
    for (int64_t l = 0; l < nlist; ++l) {
        const int64_t m = start[l + 1] - start[l];
        const int64_t s = int64_t(lists->list_size(size_t(l)));
        if (m == 0 || s == 0) continue;
        const int32_t* qrows = by_list.data() + start[l];
        gathered.resize(size_t(m) * d);
        for (int64_t i = 0; i < m; ++i)
            std::copy_n(x + int64_t(qrows[i]) * d, d, gathered.data() + i * d);
        faiss::InvertedLists::ScopedCodes codes(lists, size_t(l));
        faiss::InvertedLists::ScopedIds ids(lists, size_t(l));
        // Lists mapped from a file sit at whatever offset the file gives them.
        const int64_t* list_ids = ids.get();
        if (reinterpret_cast<uintptr_t>(list_ids) % alignof(int64_t) != 0) {
            aligned_ids.resize(size_t(s));
            std::memcpy(aligned_ids.data(), list_ids, size_t(s) * sizeof(int64_t));
            list_ids = aligned_ids.data();
        }
        scorer.score(gathered.data(), qrows, m, Vectors{codes.get(), half}, list_ids, 0, s);
    }
}

KnnIndex::KnnIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KnnIndex::KnnIndex(KnnIndex&&) noexcept = default;
KnnIndex& KnnIndex::operator=(KnnIndex&&) noexcept = default;
KnnIndex::~KnnIndex() = default;

KnnIndex KnnIndex::build(const float* data, int64_t n, int d, const IndexOptions& opt,
                         const ProgressFn& progress) {
    if (n > 0 && data == nullptr) throw Error("kNN index: no input vectors");
    return build(
        [data, d](const int64_t* ids, int64_t count, float* out) {
            for (int64_t i = 0; i < count; ++i) std::copy_n(data + ids[i] * d, d, out + i * d);
        },
        n, d, opt, progress);
}

KnnIndex KnnIndex::build(const RowSource& rows, int64_t n, int d, const IndexOptions& opt,
                         const ProgressFn& progress) {
    if (d <= 0)
        throw Error("kNN index: embedding dimension must be positive, got " + std::to_string(d));
    if (n < 0 || (n > 0 && !rows)) throw Error("kNN index: no input vectors");
    if (n >= (int64_t(1) << 31)) throw Error("kNN index: more than 2^31 vectors");
    if (opt.exact_max < 0 || opt.nlist < 0 || opt.nprobe < 0 || opt.threads < 0 ||
        opt.reduce_dim < 0 || opt.reduce_min < 0 || opt.candidates < 0)
        throw Error("kNN index: exact_max, nlist, nprobe, threads, reduce_dim, reduce_min and "
                    "candidates must be >= 0");

    auto impl = std::make_unique<Impl>();
    impl->candidates = opt.candidates;
    impl->rescore_bytes = opt.rescore_bytes;
    set_blas_threads(opt.threads);
    ScopedOmpThreads omp_threads(1);

    // Rows `ids` (ascending) fetched in batches and projected: m x (indexed dimension).
    std::unique_ptr<faiss::LinearTransform> pca;
    auto gather = [&](const std::vector<int64_t>& ids, int di) {
        std::vector<float> out(ids.size() * size_t(di)), full;
        fetch_rows(rows, ids.data(), int64_t(ids.size()), d, pca.get(), out.data(), &full);
        return out;
    };

    const bool reduce = opt.reduce_dim > 0 && d > opt.reduce_dim && n > opt.reduce_min;
    const int di = reduce ? opt.reduce_dim : d;
    if (reduce) {
        report(progress, "knn.reduce", 0, 1);
        const std::vector<float> sample = gather(sample_rows(n, std::min(n, kPcaSample)), d);
        guarded("cannot build kNN index (PCA)",
                [&] { pca = uncentred_pca(sample.data(), int64_t(sample.size()) / d, d, di); });
        report(progress, "knn.reduce", 1, 1);
    }

    const int64_t nlist =
        opt.nlist > 0 ? std::min(opt.nlist, n / kMinPerList) : auto_nlist(n);
    std::unique_ptr<faiss::Index> inner;
    guarded("cannot build kNN index", [&] {
        // With fewer than two lists an IVF index is a slower Flat one.
        if ((n <= opt.exact_max || nlist < 2) && !opt.float16) {
            auto flat = std::make_unique<faiss::IndexFlatIP>(di);
            impl->flat = flat.get();
            inner = std::move(flat);
            return;
        }
        if (n <= opt.exact_max || nlist < 2) {
            auto flat = std::make_unique<faiss::IndexScalarQuantizer>(
                di, faiss::ScalarQuantizer::QT_fp16, faiss::METRIC_INNER_PRODUCT);
            flat->is_trained = true; // float16 needs no training
            impl->flat16 = flat.get();
            inner = std::move(flat);
            return;
        }
        // The lists hold the vectors themselves (not residuals) as float16.
        auto quantizer = std::make_unique<faiss::IndexFlatIP>(di);
        std::unique_ptr<faiss::IndexIVF> ivf;
        if (opt.float16)
            ivf = std::make_unique<faiss::IndexIVFScalarQuantizer>(
                quantizer.get(), di, size_t(nlist), faiss::ScalarQuantizer::QT_fp16,
                faiss::METRIC_INNER_PRODUCT, false);
        else
            ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), di, size_t(nlist),
                                                        faiss::METRIC_INNER_PRODUCT);
        quantizer.release();
        ivf->own_fields = true;
        ivf->cp.spherical = true; // centroids on the unit sphere, like the data
        ivf->cp.niter = kKmeansIters;
        ivf->cp.seed = kKmeansSeed;
        ivf->cp.verbose = false;
        ivf->nprobe = size_t(std::min<int64_t>(opt.nprobe > 0 ? opt.nprobe : auto_nprobe(nlist),
                                               nlist));
        impl->ivf = ivf.get();
        inner = std::move(ivf);
    });
    impl->inner = inner.get();
    impl->half = opt.float16;
    if (impl->ivf) {
        // k-means cost is linear in the points, and 40 per list place the centroids well.
        report(progress, "knn.train", 0, 1);
        const std::vector<float> sample = gather(sample_rows(n, std::min(n, kTrainPerList * nlist)), di);
        guarded("cannot build kNN index",
                [&] { impl->ivf->train(int64_t(sample.size()) / di, sample.data()); });
        report(progress, "knn.train", 1, 1);
    }

    impl->lossless = !pca && opt.float16;
    impl->add_rows(rows, n, pca.get(), progress);

    if (pca) {
        impl->pca = pca.get();
        auto pt = std::make_unique<faiss::IndexPreTransform>(pca.release(), inner.release());
        pt->own_fields = true;
        pt->ntotal = impl->inner->ntotal;
        impl->index = std::move(pt);
    } else {
        impl->index = std::move(inner);
    }
    return KnnIndex(std::move(impl));
}

void KnnIndex::add(const RowSource& rows, int64_t n, const ProgressFn& progress) {
    if (n < 0 || (n > 0 && !rows)) throw Error("kNN index: no vectors to add");
    if (size() + n >= (int64_t(1) << 31)) throw Error("kNN index: more than 2^31 vectors");
    if (auto* od = impl_->ivf ? dynamic_cast<const faiss::OnDiskInvertedLists*>(impl_->ivf->invlists)
                              : nullptr;
        od && od->read_only)
        throw Error("kNN index: loaded with mapped lists (read only); load with map_lists = false to add");
    ScopedOmpThreads omp_threads(1);
    impl_->add_rows(rows, n, impl_->pca, progress);
}

void KnnIndex::search(const float* queries, int64_t nq, int k, int64_t* ids, float* sims,
                      const RowSource& base) const {
    if (k < 1) throw Error("kNN search: k must be >= 1, got " + std::to_string(k));
    if (nq <= 0) return;
    if (impl_->pca && !base)
        throw Error("kNN search: a reduced index needs the full vectors to re-score candidates");
    ScopedOmpThreads omp_threads(1);
    const int d = dim();
    // Without `base`, a full-dimension index returns the similarities of its float16 vectors.
    const bool rescore = impl_->rescores() && base;
    const int kc = rescore ? impl_->candidates_for(k) : k;
    guarded("kNN search failed", [&] {
        // Batches bound the coarse results and list groups to O(batch * (k + nprobe)).
        const int64_t batch = rescore ? 4096 : 65536;
        std::vector<float> reduced;
        std::vector<int64_t> cand_ids;
        std::vector<float> cand_sims;
        for (int64_t i0 = 0; i0 < nq; i0 += batch) {
            const int64_t m = std::min(batch, nq - i0);
            const float* q = queries + i0 * d;
            TopK top(m, kc);
            impl_->search(impl_->project(q, m, &reduced), m, &top, nullptr);
            if (!rescore) {
                top.emit(m, ids + i0 * k, sims + i0 * k);
                continue;
            }
            cand_ids.resize(size_t(m) * kc);
            cand_sims.resize(size_t(m) * kc);
            top.emit(m, cand_ids.data(), cand_sims.data());
            impl_->rescore(q, m, cand_ids.data(), kc, base, k, ids + i0 * k, sims + i0 * k);
        }
    });
}

KnnGraph KnnIndex::self_graph(const float* data, int k, const ProgressFn& progress) const {
    const int d = dim();
    if (size() > 0 && data == nullptr) throw Error("kNN graph: no input vectors");
    bool same = true;
    if (!impl_->pca && impl_->flat && size() > 0) {
        same = std::equal(data, data + d, impl_->flat->get_xb());
    } else if (!impl_->pca && impl_->flat16 && size() > 0) {
        std::vector<uint8_t> code(size_t(d) * 2);
        encode_half(data, size_t(d), code.data());
        same = std::equal(code.begin(), code.end(), impl_->flat16->codes.begin());
    }
    if (!same) throw Error("kNN graph: the vectors are not the ones the index was built from");
    return self_graph(
        [data, d](const int64_t* ids, int64_t count, float* out) {
            for (int64_t i = 0; i < count; ++i) std::copy_n(data + ids[i] * d, d, out + i * d);
        },
        k, progress);
}

KnnGraph KnnIndex::self_graph(const RowSource& rows, int k, const ProgressFn& progress) const {
    if (k < 1) throw Error("kNN graph: k must be >= 1, got " + std::to_string(k));
    const int64_t n = size();
    const int d = dim();
    KnnGraph g;
    g.n = n;
    g.k = k;
    g.ids.resize(size_t(n) * k);
    g.sims.resize(size_t(n) * k);
    if (n == 0) return g;
    if (!rows) throw Error("kNN graph: no input vectors");
    const bool rescore = impl_->rescores();
    const int kc = rescore ? impl_->candidates_for(k) : k;

    // IVF: a batch big enough that each list is probed by a few hundred of its queries, so
    // every per-list matrix product is large enough for BLAS to run at full speed.
    int64_t batch = 16384;
    if (impl_->ivf)
        batch = std::clamp<int64_t>(512 * int64_t(impl_->ivf->nlist) /
                                        std::max<int64_t>(1, int64_t(impl_->ivf->nprobe)),
                                    16384, 262144);
    batch = std::min(batch, n);
    const int di = indexed_dim();
    std::vector<int64_t> self(static_cast<size_t>(batch));
    std::vector<float> x(size_t(batch) * di), full(size_t(kFetchBatch) * d);
    // Re-scoring: every vector's candidates first (int32: 4 bytes x kc per vector), then one
    // pass that re-scores them block by block (Impl::rescore_graph).
    if (rescore && n > int64_t(INT32_MAX))
        throw Error("kNN graph: re-scoring supports at most 2^31 - 1 vectors");
    std::vector<int32_t> cand(rescore ? size_t(n) * kc : 0);
    std::vector<int64_t> cand_ids;
    std::vector<float> cand_sims;

    ScopedOmpThreads omp_threads(1);
    report(progress, "knn.self_graph", 0, uint64_t(n));
    for (int64_t start = 0; start < n; start += batch) {
        const int64_t nb = std::min(batch, n - start);
        for (int64_t r = 0; r < nb; ++r) self[r] = start + r;
        guarded("kNN self-query failed", [&] {
            // The batch's queries, fetched in pieces and projected to the indexed dimension.
            fetch_rows(rows, self.data(), nb, d, impl_->pca, x.data(), &full);
            TopK top(nb, kc);
            impl_->search(x.data(), nb, &top, self.data());
            if (!rescore) {
                top.emit(nb, g.ids.data() + start * k, g.sims.data() + start * k);
                return;
            }
            cand_ids.resize(size_t(nb) * kc);
            cand_sims.resize(size_t(nb) * kc);
            top.emit(nb, cand_ids.data(), cand_sims.data());
            std::copy(cand_ids.begin(), cand_ids.end(), cand.begin() + start * kc);
        });
        report(progress, "knn.self_graph", uint64_t(start + nb), uint64_t(n));
    }
    if (rescore)
        guarded("kNN re-scoring failed",
                [&] { impl_->rescore_graph(rows, cand, kc, &g, progress); });
    return g;
}

void KnnIndex::save(const std::string& path) const {
    // Write then rename, so an interrupted save never leaves a truncated index under `path`.
    const std::string tmp = path + ".tmp";
    guarded("cannot write kNN index " + path,
            [&] { faiss::write_index(impl_->index.get(), tmp.c_str()); });
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error("cannot write kNN index " + path + ": rename failed");
    }
}

KnnIndex KnnIndex::load(const std::string& path, const IndexOptions& opt) {
    if (opt.nprobe < 0 || opt.threads < 0 || opt.candidates < 0)
        throw Error("kNN index: nprobe, threads and candidates must be >= 0");
    if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
        std::fclose(f);
    } else {
        throw Error("kNN index file not found or unreadable: " + path);
    }
    auto impl = std::make_unique<Impl>();
    impl->candidates = opt.candidates;
    impl->rescore_bytes = opt.rescore_bytes;
    set_blas_threads(opt.threads);
    // IO_FLAG_MMAP maps the inverted lists (faiss's OnDiskInvertedLists over the file, read
    // only) instead of reading them: `vislint similar` touches the nprobe lists it scans, not
    // the whole file. Flat indexes (<= exact_max vectors) and the centroids are still read.
    impl->index.reset(guarded("kNN index file is corrupt or not a faiss index: " + path, [&] {
        return faiss::read_index(path.c_str(), opt.map_lists ? faiss::IO_FLAG_MMAP : 0);
    }));
    faiss::Index* idx = impl->index.get();
    bool ok_transform = true;
    if (auto* pt = dynamic_cast<faiss::IndexPreTransform*>(idx)) {
        auto* pca = pt->chain.size() == 1 ? dynamic_cast<faiss::LinearTransform*>(pt->chain[0])
                                          : nullptr;
        ok_transform = pca && pca->is_trained && !pca->have_bias && pca->d_out == pt->index->d &&
                       pca->A.size() == size_t(pca->d_out) * size_t(pca->d_in);
        impl->pca = pca;
        idx = pt->index;
    }
    impl->inner = idx;
    // float16 (since issue 12) or float32 (before) vectors, exact or in IVF lists.
    const size_t d = size_t(std::max(idx->d, 0));
    auto fp16 = [d](const faiss::ScalarQuantizer& sq) {
        return sq.qtype == faiss::ScalarQuantizer::QT_fp16 && sq.code_size == 2 * d;
    };
    impl->flat = dynamic_cast<faiss::IndexFlat*>(idx);
    if (auto* sq = dynamic_cast<faiss::IndexScalarQuantizer*>(idx); sq && fp16(sq->sq) &&
        sq->codes.size() == size_t(sq->ntotal) * 2 * d)
        impl->flat16 = sq;
    if (auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(idx); ivf && ivf->code_size == 4 * d)
        impl->ivf = ivf;
    if (auto* ivf = dynamic_cast<faiss::IndexIVFScalarQuantizer*>(idx);
        ivf && !ivf->by_residual && fp16(ivf->sq) && ivf->code_size == 2 * d) {
        impl->ivf = ivf;
        impl->half = true;
    }
    impl->half = impl->half || impl->flat16;
    const bool ok_quantizer =
        !impl->ivf || (dynamic_cast<faiss::IndexFlat*>(impl->ivf->quantizer) &&
                       impl->ivf->quantizer->ntotal == int64_t(impl->ivf->nlist) &&
                       impl->ivf->invlists && impl->ivf->invlists->nlist == impl->ivf->nlist &&
                       impl->ivf->invlists->code_size == impl->ivf->code_size);
    if (!ok_transform || (!impl->flat && !impl->flat16 && !impl->ivf) ||
        idx->metric_type != faiss::METRIC_INNER_PRODUCT || !idx->is_trained || !ok_quantizer)
        throw Error("not a vislint kNN index (expected an inner-product Flat, SQfp16, IVF-Flat "
                    "or IVF-SQfp16 index, optionally behind a PCA): " + path);
    // faiss maps the lists without checking them against the file's size: a truncated file
    // would fault on the first search, so every list must lie inside the mapping.
    if (auto* od = impl->ivf ? dynamic_cast<const faiss::OnDiskInvertedLists*>(impl->ivf->invlists)
                             : nullptr) {
        size_t total = 0;
        for (const faiss::OnDiskOneList& l : od->lists) {
            const size_t bytes = l.size * (od->code_size + sizeof(faiss::Index::idx_t));
            if (l.offset > od->totsize || bytes > od->totsize - l.offset)
                throw Error("kNN index file is truncated or corrupt (an inverted list lies "
                            "past its end): " + path);
            total += l.size;
        }
        if (total != size_t(impl->ivf->ntotal))
            throw Error("kNN index file is corrupt (its lists hold " + std::to_string(total) +
                        " vectors, its header says " + std::to_string(impl->ivf->ntotal) + "): " +
                        path);
    }
    if (impl->ivf && opt.nprobe > 0)
        impl->ivf->nprobe = std::min<size_t>(size_t(opt.nprobe), impl->ivf->nlist);
    return KnnIndex(std::move(impl));
}

int64_t KnnIndex::size() const { return impl_->inner->ntotal; }
int KnnIndex::dim() const { return impl_->full_dim(); }
int KnnIndex::indexed_dim() const { return impl_->inner->d; }
bool KnnIndex::exact() const { return impl_->ivf == nullptr; }
bool KnnIndex::reduced() const { return impl_->pca != nullptr; }

std::string KnnIndex::description() const {
    std::string s;
    if (impl_->pca)
        s = "PCA" + std::to_string(dim()) + "->" + std::to_string(indexed_dim()) + ",";
    if (!impl_->ivf) return s + "Flat";
    return s + "IVF" + std::to_string(impl_->ivf->nlist) + (impl_->half ? ",SQfp16" : ",Flat") +
           " nprobe=" + std::to_string(impl_->ivf->nprobe);
}

} // namespace vislint::index
