// k-nearest-neighbour search over L2-normalised float32 embeddings (similarity = inner product =
// cosine), and the kNN graph of a whole dataset. The only place in vislint that uses faiss; this
// header includes none of it (pimpl), so faiss stays a private dependency of vislint_core.
//
// Index choice (figures from bench/knn_bench.cc, 2 cores, clustered data, k = 10):
//   n <= exact_max  "Flat": exact. Each query is scored against every vector (faiss
//                   IndexScalarQuantizer QT_fp16 holding the codes).
//   n >  exact_max  "IVF{nlist},SQfp16": spherical k-means coarse quantizer + inverted lists
//                   holding the vectors as float16 (faiss IndexIVFScalarQuantizer, QT_fp16, not
//                   by residual); only recall is approximate (similarities: see Storage).
//                   nlist  = clamp(4 sqrt(n), 256, 65536), at most n / 39 (faiss wants 39 training
//                            points per list); fewer than 2 lists falls back to Flat.
//                   train  = 10 k-means iterations on min(n, 40 nlist) rows picked with a fixed seed.
//                   (10 iterations instead of faiss's 25: same recall, 2.4x faster training.)
//                   nprobe = clamp(nlist / 128, 16, 32): 31 at 1 M, 32 from 1.05 M up (the cap was 64
//                            before the 10 M run: each probe there scans 3x longer lists, 10x the
//                            queries; 1 M x 256 self-graph at nprobe 31 / 12: 64 / 32 s, recall@10
//                            0.9996 / 0.9901, knn_bench --npy on the scale bench's embeddings).
//                            recall@10 1.000 on the default bench data; on very diffuse clusters (1 M x 128, noise 1.6) nprobe 8 /
//                            16 / 31 gave 0.974 / 0.978 / 0.984.
//                   1 M x 256 (float32 lists, before issue 12, quiet host): build 27 s (train 17,
//                   add 10) + whole self-graph 52 s, 2.4 GB peak RSS (1 GB of it the caller's
//                   data); 1 M x 128: 17 s + 34 s, 1.3 GB. float16 lists: see Storage.
// Searching: faiss provides the k-means, the lists and the file format; the scoring is done here,
// as BLAS matrix products (the queries probing one list against that list's vectors). Debian's
// libfaiss is compiled for baseline x86-64 (no AVX) and its per-vector loops score ~2 GMAC/s per
// core, while OpenBLAS picks AVX2 kernels at run time: self-graph of 200k x 256 at nprobe 16,
// 4.2 s here vs 21 s through faiss's IndexIVFFlat::search.
// Not chosen: HNSW (M 32, efConstruction 40): 12 s to build 100k x 256, so ~150 s for 1 M, more
// than IVF build + whole self-graph; IVF-SQ8: 4x less index memory, but faiss's SQ8 scan was 1.8x
// slower than its Flat scan (38 vs 21 s, 200k self-search), out of reach of the BLAS trick, and
// its similarities are approximate (8-bit steps per dimension, not measured against the 0.005
// near-duplicate decisions need): float16 halves the memory with exact results and keeps BLAS.
//
// Storage (issue 12: 10 M x 256 in <= 16 GB): the vectors are stored as IEEE float16, 2 bytes
// per dimension (10 M x 256: 5.1 GB of lists instead of 10.2 GB), in faiss's own QT_fp16 layout,
// so faiss writes and reads the files. Before each sgemm a list is decoded to float32 one
// 4096-row tile at a time into a reusable buffer. faiss's ScalarQuantizer::decode is baseline
// x86-64 code: 0.10 G values/s; the F16C decode here (_mm256_cvtph_ps, chosen at run time by
// __builtin_cpu_supports, portable bit-exact fallback at 0.25 G values/s) runs at 2.3 G values/s,
// the speed of copying the float32 tile (0.46 ms per 4096 x 256 tile, against the tens of ms of
// the product it feeds at the self-graph's several hundred queries per list).
// Exactness: a scan's vectors are rows of features.npy, float16 already, so storing them as
// float16 loses nothing: build() checks every vector's round trip and, when all survive, the
// similarities are the float32 dot products of those rows (what numpy gives on features.npy,
// to float32 rounding, ~1e-7). Vectors that do not survive (float32 callers) move each
// similarity by at most 2^-11 = 4.9e-4 (relative rounding 2^-11 per component, Cauchy-Schwarz
// for unit vectors); then self_graph(), and search() when given `base`, take 2k candidates
// and re-score them with the full vectors, so those similarities are exact too; search()
// without `base` returns the float16 ones (within 4.9e-4, under the 0.005 the duplicate
// thresholds need). A loaded index cannot know its inputs were float16, so its self_graph()
// re-scores. IndexOptions::float16 = false keeps the float32 storage (IndexFlatIP /
// IndexIVFFlat), which is also what files from before issue 12 hold; load() reads both.
//   1 M x 256, float16 inputs (knn_bench --round-fp16 1), host loaded by other builds (load
//   average 3-7, so times are 2-5x the quiet-host ones above; before/after run back to back):
//                      lists     build (train + add)  self-graph  peak RSS (data 0.98 GB)  file
//     float32 (before)  IVF-Flat  107 s (65 + 42)      173 s       2.51 GB                  988 MB
//     float16 (now)     IVF-SQ16   92 s (58 + 34)      148 s       1.89 GB                  500 MB
//   recall@10 1.000 both (300 queries vs brute force), largest similarity error 6.6e-7 both;
//   the float16 run was not slower (decode included) -- the difference is the host's noise.
// Loading: load() maps the IVF lists (faiss IO_FLAG_MMAP: OnDiskInvertedLists over the file,
// read only) instead of reading them, after checking that every list lies inside the file (faiss
// does not, and a truncated file would fault at the first search). `vislint similar` touches the
// centroids and the nprobe lists it scans, not the whole file:
//     1 M x 256 (file 500 MB): faiss read_index without the flag 4.9 s cold / 0.95 s warm and
//     511 MB RSS (float32 file, 988 MB: 8.6 s / 1.9 s, 1 GB); with it 0.005-0.014 s and 12-19 MB,
//     then 2-12 ms per single query warm, 0.18 s for the first query with the file out of the
//     page cache (74 MB peak RSS for load + 10 queries).
//     2 M x 256 (IVF5657,SQfp16, file 997 MB): read_index without the flag 3.0 s cold / 0.6 s
//     warm, 1011 MB RSS; with it 0.003-0.008 s and 21 MB, then 2-5 ms per query warm, 0.42 s
//     for the first query cold (124 MB peak RSS). Its build 384 s + graph 861 s, recall@10
//     1.000, 3.7 GB peak RSS (2.0 GB the bench's data), at load average 6-8.
// Not chosen for loading: IO_FLAG_ONDISK_SAME_DIR (a separate .ivfdata file next to the index:
// two files to keep in step in a work dir for the same mapping).
//
// Reduction (d > reduce_dim and n > reduce_min): the index holds the vectors projected to
// reduce_dim dimensions by an uncentred PCA (faiss PCAMatrix trained on a sample; stored in the
// index file as an IndexPreTransform), and searches find `candidates` per query there. Those are
// re-scored with the full vectors (fetched through a RowSource), so every similarity returned is
// exact at full dimension; only recall is approximate. Uncentred (second-moment) PCA is the best
// rank-reduce_dim approximation of the inner products themselves; centred PCA would drop the mean
// direction, which carries much of the similarity of non-negative CNN features. The projected
// vectors are stored as float16 too (they only pick candidates).
//   Default-model embeddings of the 20 k bench corpus (EfficientNet-Lite0, 1280-d), exact Flat
//   at full dimension vs PCA to 256 (bench/knn_bench.cc --npy, 2026-12-02): graph 6.4 s -> 2.5 s
//   at 2 threads and 10.6 s -> 3.9 s at 1 (PCA 0.4 s of it); recall@10 0.9952 / 0.9992 /
//   0.9998 with 2k / 3k (the default) / 4k candidates; largest similarity error 3e-7.
//   Synthetic 1 M x 1280 (knn_bench --d 1280 --round-fp16 1, loaded host as above):
//   PCA1280->256,IVF4000,SQfp16: build 78 s (PCA 0.7, train 42, add 36) + graph 213 s, peak RSS
//   7.3 GB of which 4.9 GB the bench's float32 data (the pre-PCA float32 IVF4000,Flat at 1280:
//   11.2 GB, 470 s on 2026-12-02's host), largest similarity error 3e-7; but recall@10 0.20
//   (100 k: 0.56): the bench's isotropic clusters (1,000 random centres in 1280 dims plus
//   noise in all of them) have no 256-dimensional structure for the PCA to keep, unlike real
//   embeddings (0.9992 above). Not an effect of the float16 storage (it moves reduced-space
//   similarities by < 4.9e-4, the PCA by far more); a float32-storage control at 1280 was not
//   run (shared host, time), so that is argued, not measured.
//
// Re-scoring in self_graph() (reduced or rounded indexes) runs in two passes, so that the full
// vectors are read in order, never at random: (1) every vector's candidates are searched in the
// index (kept as int32, 4 x candidates bytes per vector: 1.2 GB at 10 M x 30); (2) block by
// block of IndexOptions::rescore_bytes of query rows (float32; 2 GB by default = 419 k rows at
// 1280-d), the block's candidate ids are sorted and their rows fetched in ascending order, one
// sequential sweep of the base per block, and each candidate is scored against its query.
// Why: at 10 M x 1280 the scan's features.npy (float16) is 25.6 GB on a 23.5 GB machine, so the
// per-query fetch of 30 candidates this replaces missed the page cache on most of its 300 M
// reads, at the 5.4 k random 4 KB reads/s measured here (hours); this disk reads 1.4 GB/s in
// order, so each block's sweep costs ~20 s. search() with `base` still fetches per query: it
// serves `similar` and incremental updates, a few thousand queries.
//
// Memory: the index holds its own copy of the vectors (2 x indexed-dimension bytes each, + 8
// bytes of id for IVF; 4 x for float32 storage); the full vectors are read in batches through
// the RowSource and never held whole. Nothing is ever n x n: queries run in batches, scores in
// 1024 x 4096 tiles. 10 M x 256 (estimate, not run here): 5.1 GB of lists + 0.08 GB of ids, next
// to the 5.1 GB features.npy the scan maps and the 1.2 GB graph (k = 10).
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
    // self_graph() re-scoring: query rows (float32) held at a time; see "Re-scoring" above.
    int64_t rescore_bytes = int64_t(2) << 30;
    bool float16 = true;       // store the vectors as float16; false: float32 (as before issue 12)
    bool map_lists = true;     // load(): map the IVF lists read only; false reads them (for add())
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

// Thread safety: a KnnIndex is immutable after build() / load() except through add().
// search(), self_graph(), save() and the accessors may be called concurrently from several
// threads without synchronisation.
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

    // Appends the n vectors of `rows`, ids size() .. size() + n - 1, with the trained quantizer
    // and PCA as they are (nothing is re-trained: see pipeline/scan_knn.cc for when a scan
    // rebuilds instead). Not thread-safe with other calls on this index. An index loaded with
    // mapped lists throws (load it with IndexOptions::map_lists = false).
    // REQUIRES: rows L2-normalised, of dim().
    void add(const RowSource& rows, int64_t n, const ProgressFn& progress = {});

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
