// k-nearest-neighbour search over L2-normalised float32 embeddings (similarity = inner product =
// cosine), and the kNN graph of a whole dataset. The only place in vislint that uses faiss; this
// header includes none of it (pimpl), so faiss stays a private dependency of vislint_core.
//
// Index choice (measured in bench/knn_bench.cc, figures in the report of the commit):
//   n <= exact_max      "Flat": exact IndexFlatIP, BLAS matrix products. 50k vectors self-query in
//                       seconds, so small datasets get exact answers.
//   n >  exact_max      "IVF{nlist},Flat": inverted file over a spherical k-means coarse
//                       quantizer, full float vectors in the lists (so similarities are exact for
//                       the candidates found; only recall is approximate).
//                       nlist = clamp(4 * sqrt(n), 256, 65536), and at most n / 39 so that k-means
//                       has the 39 points per centroid faiss asks for; trained on a deterministic
//                       sample of min(n, 40 * nlist) vectors (fixed seed), 10 k-means iterations.
//                       nprobe (automatic) = clamp(nlist / 64, 16, 128)... see kAutoNprobe in .cc.
// HNSW was rejected: its build alone over 1 M x 256 on two cores is slower than IVF build + the
// whole self-query, and it keeps the graph (~256 bytes / vector) on top of the vectors.
// IVF-SQ8 (1 byte / dimension instead of 4) was measured too; see the .cc for why it is not the
// default.
//
// Memory: the index holds its own copy of the vectors (4 * d bytes each, plus 8 bytes of id for
// IVF). Nothing is ever n x n: self_graph() works in batches of queries.
#pragma once

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
    int threads = 0;           // OpenMP threads for faiss calls made by this index; 0 = all cores
};

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
// and the accessors may be called concurrently from several threads without synchronisation
// (faiss CPU indexes support concurrent const searches; the thread count is set per calling
// thread). Each call uses up to `threads` OpenMP threads of its own, plus OpenBLAS's pool.
//
// Errors: bad arguments that can come from user options, faiss failures, unreadable or corrupt
// files and out-of-memory are thrown as vislint::Error; cancellation as vislint::Cancelled.
class KnnIndex {
public:
    KnnIndex(KnnIndex&&) noexcept;
    KnnIndex& operator=(KnnIndex&&) noexcept;
    ~KnnIndex();

    // Builds an index over `data`, n x d floats, row-major, ids 0..n-1. The vectors are copied.
    // REQUIRES: d > 0, n >= 0, data != nullptr when n > 0; rows L2-normalised (not checked).
    static KnnIndex build(const float* data, int64_t n, int d, const IndexOptions& opt,
                          const ProgressFn& progress = {});

    // The k best indexed vectors for each of nq queries (nq x d floats, row-major).
    // Writes nq x k ids and sims (row-major, caller-owned), best first; padding -1 / -infinity.
    // REQUIRES: k >= 1; nq >= 0.
    void search(const float* queries, int64_t nq, int k, int64_t* ids, float* sims) const;

    // The kNN graph of the indexed vectors against themselves. Each row excludes its own id (not
    // "the first result": with exact duplicates the first result may be another copy, which is
    // kept). Queries run in batches, so memory beyond the result is O(batch * k).
    // REQUIRES: `data` is the n x d matrix the index was built from (same order); k >= 1.
    KnnGraph self_graph(const float* data, int k, const ProgressFn& progress = {}) const;

    // faiss's own file format (faiss::write_index / read_index); nprobe is stored with it.
    void save(const std::string& path) const;
    // `opt.threads` applies; `opt.nprobe` != 0 overrides the stored nprobe; the rest is ignored.
    // Throws vislint::Error naming the path if the file is missing, unreadable, corrupt or not an
    // inner-product index of a kind vislint builds.
    static KnnIndex load(const std::string& path, const IndexOptions& opt = {});

    int64_t size() const;
    int dim() const;
    bool exact() const;
    // "Flat" or e.g. "IVF4000,Flat nprobe=16".
    std::string description() const;

private:
    struct Impl;
    explicit KnnIndex(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The BLAS library in use at run time, e.g. "OpenBLAS NO_AFFINITY Haswell MAX_THREADS=64", or a
// warning that it is the (much slower) reference BLAS.
std::string blas_library();

} // namespace vislint::index
