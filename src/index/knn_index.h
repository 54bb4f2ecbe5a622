// k-nearest-neighbour search over L2-normalised float32 embeddings (similarity = inner product =
// cosine), and the kNN graph of a whole dataset. The only place in vislint that uses faiss; this
// header includes none of it (pimpl), so faiss stays a private dependency of vislint_core.
//
// Index choice (figures from bench/knn_bench.cc, 2 cores, clustered data, k = 10):
//   n <= exact_max  "Flat": exact. Each query is scored against every vector.
//   n >  exact_max  "IVF{nlist},Flat": spherical k-means coarse quantizer + inverted lists holding
//                   the full float vectors, so the similarities returned are exact and only
//                   recall is approximate.
//                   nlist  = clamp(4 sqrt(n), 256, 65536), at most n / 39 (faiss wants 39 training
//                            points per list); fewer than 2 lists falls back to Flat.
//                   train  = 10 k-means iterations on min(n, 40 nlist) rows picked with a fixed seed.
//                   (10 iterations instead of faiss's 25: same recall, 2.4x faster training.)
//                   nprobe = clamp(nlist / 128, 16, 64): 31 at 1 M. recall@10 1.000 on the default
//                            bench data; on very diffuse clusters (1 M x 128, noise 1.6) nprobe 8 /
//                            16 / 31 gave 0.974 / 0.978 / 0.984.
//                   1 M x 256: build 27 s (train 17, add 10) + whole self-graph 52 s, 2.4 GB peak
//                   RSS (1 GB of it the caller's data); 1 M x 128: 17 s + 34 s, 1.3 GB.
// Searching: faiss provides the k-means, the lists and the file format; the scoring is done here,
// as BLAS matrix products (the queries probing one list against that list's vectors). Debian's
// libfaiss is compiled for baseline x86-64 (no AVX) and its per-vector loops score ~2 GMAC/s per
// core, while OpenBLAS picks AVX2 kernels at run time: self-graph of 200k x 256 at nprobe 16,
// 4.2 s here vs 21 s through faiss's IndexIVFFlat::search.
// Not chosen: HNSW (M 32, efConstruction 40): 12 s to build 100k x 256, so ~150 s for 1 M, more
// than IVF build + whole self-graph; IVF-SQ8: 4x less index memory, but faiss's SQ8 scan was 1.8x
// slower than its Flat scan (38 vs 21 s, 200k self-search), out of reach of the BLAS trick, and
// its similarities are approximate.
//
// Reduction (d > reduce_dim and n > reduce_min): the index holds the vectors projected to
// reduce_dim dimensions by an uncentred PCA (faiss PCAMatrix trained on a sample; stored in the
// index file as an IndexPreTransform), and searches find `candidates` per query there. Those are
// re-scored with the full vectors (fetched through a RowSource), so every similarity returned is
// exact at full dimension; only recall is approximate. Uncentred (second-moment) PCA is the best
// rank-reduce_dim approximation of the inner products themselves; centred PCA would drop the mean
// direction, which carries much of the similarity of non-negative CNN features.
//   Default-model embeddings of the 20 k bench corpus (EfficientNet-Lite0, 1280-d), exact Flat
//   at full dimension vs PCA to 256 (bench/knn_bench.cc --npy, 2026-12-02): graph 6.4 s -> 2.5 s
//   at 2 threads and 10.6 s -> 3.9 s at 1 (PCA 0.4 s of it); recall@10 0.9952 / 0.9992 /
//   0.9998 with 2k / 3k (the default) / 4k candidates; largest similarity error 3e-7.
//
// Memory: the index holds its own copy of the vectors (4 x indexed-dimension bytes each, + 8
// bytes of id for IVF); the full vectors are read in batches through the RowSource and never
// held whole. Nothing is ever n x n: queries run in batches, scores in 1024 x 4096 tiles.
//
// Threads: parallelism comes from the BLAS library (see blas_library()). IndexOptions::threads > 0
// sets OpenBLAS's thread count with openblas_set_num_threads, which is process-wide; 0 leaves it
// alone (OpenBLAS default: all cores, or OPENBLAS_NUM_THREADS). faiss's own OpenMP loops run on
// one thread: libgomp workers spin after each parallel region and starved the OpenBLAS threads
// (k-means 4x slower on two cores).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vislint::index {

// Progress of a long operation: stage name ("knn.train", "knn.add", "knn.self_graph"), done and
// total in that stage's unit (vectors; 0/1 for training, which cannot be interrupted). Called on
// the calling thread, between batches. Returning false cancels: the call throws
// vislint::Cancelled. An empty function reports nothing.
using ProgressFn = std::function<bool(const char* stage, uint64_t done, uint64_t total)>;

struct IndexOptions {
    int64_t exact_max = 50000; // up to this many vectors: exact; above: IVF
    int64_t nlist = 0;         // IVF lists; 0 = automatic (see above)
    int nprobe = 0;            // IVF lists visited per query; 0 = automatic
    int threads = 0;           // BLAS threads (process-wide, see above); 0 = leave as is
    int reduce_dim = 256;      // PCA to this many dimensions when d is larger; 0 = never
    int64_t reduce_min = 8192; // ... and when there are more than this many vectors
    int candidates = 0;        // reduced index: candidates re-scored per query; 0 = automatic
    bool float16 = true;       // store the vectors as float16; false: float32 (as before issue 12)
};

// Full-dimension vectors by id: writes rows ids[0..count) to out (count x d floats, row-major).
// Called on the calling thread, in batches of at most a few thousand ids; may throw.
using RowSource = std::function<void(const int64_t* ids, int64_t count, float* out)>;

// A kNN graph: row i holds the k neighbours of vector i, best first, itself excluded.
// n x k row-major. Rows with fewer than k neighbours are padded with id -1 and sim -infinity.
struct KnnGraph {
    int64_t n = 0;
    int k = 0;
    std::vector<int64_t> ids;
    std::vector<float> sims;

    const int64_t* row_ids(int64_t i) const { return ids.data() + i * k; }
    const float* row_sims(int64_t i) const { return sims.data() + i * k; }
};

// Thread safety: a KnnIndex is immutable after build() / load(). search(), self_graph(), save()
// and the accessors may be called concurrently from several threads without synchronisation.
// A KnnIndex is movable, not copyable.
//
// Errors: bad arguments that can come from user options, faiss failures, unreadable or corrupt
// files and out-of-memory are thrown as vislint::Error; cancellation as vislint::Cancelled.
class KnnIndex {
public:
    KnnIndex(KnnIndex&&) noexcept;
    KnnIndex& operator=(KnnIndex&&) noexcept;
    ~KnnIndex();

    // Builds an index over the n vectors of `rows` (ids 0..n-1, d floats each), read in batches.
    // The index keeps its own (possibly reduced) copy.
    // REQUIRES: d > 0, n >= 0; rows L2-normalised (not checked).
    static KnnIndex build(const RowSource& rows, int64_t n, int d, const IndexOptions& opt,
                          const ProgressFn& progress = {});
    // The same over `data`, n x d floats, row-major (data != nullptr when n > 0).
    static KnnIndex build(const float* data, int64_t n, int d, const IndexOptions& opt,
                          const ProgressFn& progress = {});

    // The k best indexed vectors for each of nq queries (nq x d floats, row-major).
    // Writes nq x k ids and sims (row-major, caller-owned), best first; padding -1 / -infinity.
    // A reduced index needs `base`, the indexed vectors at full dimension, to re-score its
    // candidates (its absence throws). k < 1 throws vislint::Error.
    void search(const float* queries, int64_t nq, int k, int64_t* ids, float* sims,
                const RowSource& base = {}) const;

    // The kNN graph of the indexed vectors against themselves. Each row excludes its own id (not
    // "the first result": with exact duplicates the first result may be another copy, which is
    // kept). Queries run in batches, so memory beyond the result is O(batch * (k + d)).
    // REQUIRES: `rows` / `data` give the vectors the index was built from, same ids (a Flat
    // index checks the first row). k < 1 throws vislint::Error.
    KnnGraph self_graph(const RowSource& rows, int k, const ProgressFn& progress = {}) const;
    KnnGraph self_graph(const float* data, int k, const ProgressFn& progress = {}) const;

    // faiss's own file format (faiss::write_index / read_index); nprobe is stored with it.
    void save(const std::string& path) const;
    // `opt.threads` applies; `opt.nprobe` != 0 overrides the stored nprobe; the rest is ignored.
    // Throws vislint::Error naming the path if the file is missing, unreadable, corrupt or not an
    // inner-product index of a kind vislint builds.
    static KnnIndex load(const std::string& path, const IndexOptions& opt = {});

    int64_t size() const;
    int dim() const;         // of the vectors given and the queries (before any reduction)
    int indexed_dim() const; // of the vectors the index holds (reduce_dim when reduced)
    bool exact() const;      // every vector is scored (Flat), in the indexed dimension
    bool reduced() const;
    // "Flat", "IVF4000,Flat nprobe=16", "PCA1280->256,Flat candidates=30", ...
    std::string description() const;

private:
    struct Impl;
    explicit KnnIndex(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The float16 codec of the stored vectors (IEEE binary16, round to nearest even; subnormals,
// infinities and NaN kept): n values. F16C instructions when the CPU has them (fp16_hardware()),
// else portable code that gives the same bits; `portable` forces the latter (for tests).
void encode_fp16(const float* x, size_t n, uint16_t* out, bool portable = false);
void decode_fp16(const uint16_t* h, size_t n, float* out, bool portable = false);
bool fp16_hardware();

// The BLAS library in use at run time, e.g. "OpenBLAS NO_AFFINITY Haswell MAX_THREADS=64", or a
// warning that it is the (much slower) reference BLAS.
std::string blas_library();

} // namespace vislint::index
