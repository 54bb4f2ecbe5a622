// The steps of a scan, which scan.cc runs in order: plan what to analyse (scan_plan.cc), analyse
// each image on worker threads (scan_analyse.cc), derive the issues from the images table
// (scan_derive.cc), and write the run record (run_record.cc). Internal to src/pipeline.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <unordered_map>

#include "embed/embedder.h"
#include "graph/duplicates.h"
#include "io/npy.h"
#include "pipeline/items.h"
#include "store/db.h"
#include "store/features.h"
#include "store/image_record.h"
#include "vislint/options.h"
#include "vislint/scan.h"

namespace vislint::pipeline {

using Clock = std::chrono::steady_clock;
constexpr int kWorkingSide = 256;
constexpr const char* kIndexName = "index.faiss";

inline double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// Reports progress at most ~20 times per second (and always at the end of a stage).
class Reporter {
public:
    explicit Reporter(Progress* p) : p_(p) {}
    bool report(const char* stage, uint64_t done, uint64_t total, bool force = false) {
        if (!p_) return true;
        auto now = Clock::now();
        if (!force && now - last_ < std::chrono::milliseconds(50)) return true;
        last_ = now;
        if (!p_->progress(stage, done, total)) cancel_requested_ = true;
        return !cancel_requested_;
    }
    bool cancel_requested() const { return cancel_requested_; }
    void log(const char* level, const std::string& msg) {
        if (std::string(level) == "warning") warnings_.push_back(msg);
        if (p_) p_->log(level, msg.c_str());
    }
    const std::vector<std::string>& warnings() const { return warnings_; }

private:
    Progress* p_;
    bool cancel_requested_ = false;
    std::vector<std::string> warnings_; // kept for run.json (and so the report)
    Clock::time_point last_{};
};

// OpenVINO runs `threads` inference threads as `threads` infer requests of one thread each, each
// driven by its own inference worker, rather than one request with `threads` threads: with the
// decode workers busy, on 2 cores, 2 x 1 ran 101 img/s (f32) / 133 (bf16) against 40 / 87 for
// 1 x 2, whose threads wait for each other at every layer (bench/infer_threads.cc, 2026-12-01).
inline int inference_streams(int threads) { return threads; }

// ---- plan (scan_plan.cc)

// Everything per-image analysis depends on besides the file: if it changes, a re-scan must
// re-analyse every image instead of reusing rows.
std::string analysis_signature(const ScanOptions& o, const embed::ModelSpec* model);

// Refuses a work dir inside an input folder; creates the work dir.
void check_work_dir(const ScanOptions& o);

struct Planned {
    std::vector<store::ImageRecord> todo; // to analyse (id, path, size, mtime set)
    uint64_t reused = 0;
    std::vector<int64_t> removed_ids;
};

// `features_path`: with a model, the features file whose rows reused images must have intact.
Planned plan(store::Db& db, const std::vector<pipeline::Item>& items, bool reuse,
             const std::string& features_path, Reporter& rep);

// ---- analyse (scan_analyse.cc)

class GivenVectors;

// Everything the analysis stage needs besides the file list.
struct AnalyseContext {
    int threads = 1;
    int64_t max_pixels = 0;
    int64_t max_image_bytes = 0;
    const embed::ModelSpec* model = nullptr; // nullptr = hash-only mode
    // With a model: the compiled model, shared by its streams() inference workers.
    embed::Embedder* embedder = nullptr;
    int batch_size = 16;
    store::FeatureFile* features = nullptr;
    double box_margin = 0.1;
    const GivenVectors* given = nullptr; // --embeddings with images: vectors instead of a model
};

// Analyses `todo` and writes each record as it arrives.
//
// decode workers ──(model inputs, bounded)──► inference workers ──► done queue ──► this thread
//        └──────────── broken images / hash-only mode ──────────────┘
// The inference workers share one Embedder (one compiled model), each driving its own infer
// request, and form batches from whatever the decoders have ready, so decoding and inference
// overlap and at most (queue capacity + batch) model inputs exist at any time.
void analyse_all(store::Db& db, std::vector<store::ImageRecord>& todo, AnalyseContext& ctx,
                 Reporter& rep, bool* cancelled);

// ---- analyse, embeddings-only mode (scan_embeddings.cc)

// Whether the scan compares vectors: a model's, or the user's (--embeddings).
inline bool has_vectors(const ScanOptions& o) { return o.model.model != "none" || !o.embeddings.empty(); }
inline bool embeddings_only(const ScanOptions& o) { return !o.embeddings.empty() && o.inputs.empty(); }

// What the items of an embeddings-only scan depend on: both files' path, size and mtime.
std::string embeddings_signature(const ScanOptions& o);

// Checks the names file and the .npy whole (counts, empty or repeated names, dtype, shape,
// non-finite or zero rows: vislint::Error naming the file, line or row), then writes one images
// row and one features.npy row per item. `reuse` (same signature): nothing is re-read when
// features.npy already has every row. When the work dir holds an earlier import of the same
// names, only new and changed rows are written and rows past the end removed (`*removed`).
// Returns the number of items imported (0 when reused).
uint64_t import_embeddings(store::Db& db, const ScanOptions& o, bool reuse, Reporter& rep, uint64_t* removed);

// Precomputed vectors for images (`scan LIST.txt --embeddings EMB.npy`): row i of the .npy is
// the i-th entry of the list file. The images are still decoded for stats, hashes and broken
// checks; these vectors take the model's place. Thread-safe after construction.
class GivenVectors {
public:
    // Checks the list (one input, a list file, no repeated entry), the .npy (as the
    // embeddings-only mode does) and that they have as many rows; vislint::Error otherwise.
    GivenVectors(const ScanOptions& o, Reporter& rep);
    int dim() const { return emb_.cols(); }
    // Path, size and mtime of the .npy and the list: part of the analysis signature.
    const std::string& identity() const { return identity_; }
    // The L2-normalised row of `path` into out (dim() floats); false when it is not listed.
    bool get(const std::string& path, float* out) const;

private:
    io::NpyMatrix emb_;
    std::unordered_map<std::string, int64_t> row_of_;
    std::string identity_;
};

// Rewrites the labels table from a labels CSV / rows keyed by item name (exactly as written).
// Returns the number of labelled items.
uint64_t write_name_labels(store::Db& db, const ScanOptions& o, Reporter& rep);

// ---- derive (scan_derive.cc)

// Rewrites the labels table: label and split of every item of this scan, by image id.
void write_labels(store::Db& db, const std::vector<Item>& items);

// The kNN graph over the embedded images (scan_knn.cc), for the findings: positions[i] indexes
// `items` for row i; ids (-1 = none) and sims are n x k by row.
struct Embedded {
    std::vector<size_t> positions;
    std::vector<int64_t> ids;
    std::vector<float> sims;
    int k = 0;
    std::string description; // of the index, and whether it was built or updated
};
Embedded knn_graph(store::Db& db, const ScanOptions& o, const std::vector<graph::DupItem>& items,
                   const std::vector<bool>& embedded, int threads, Reporter& rep,
                   std::map<std::string, double>* timings);

// Re-derives every issue row and duplicate group from the images table (one transaction).
// `index_description` receives the kNN index's description (model runs).
void derive_issues(store::Db& db, const ScanOptions& o, int threads, Reporter& rep,
                   std::map<std::string, double>* timings, std::string* index_description);

// ---- run record (run_record.cc)

// Writes run.json (options, counts, timings, warnings, inference and index details) atomically.
void write_run_json(const ScanOptions& o, const ScanSummary& s, int threads, const std::string& status,
                    const std::string& started, const embed::ModelSpec* model);

// The work dir's run_state (meta): "running" from the start of a scan until it ends as
// "complete", "cancelled" or "failed"; readers warn unless it is "complete". A scan that dies
// (kill -9, power loss, disk full) leaves "running".
class RunState {
public:
    RunState(store::Db& db, const Reporter& rep) : db_(db), rep_(rep) {}
    // Reached without end(): the scan is unwinding, cancelled (progress said stop) or failed.
    ~RunState();
    RunState(const RunState&) = delete;
    RunState& operator=(const RunState&) = delete;
    void end(const char* state);

private:
    store::Db& db_;
    const Reporter& rep_;
    bool ended_ = false;
};

} // namespace vislint::pipeline
