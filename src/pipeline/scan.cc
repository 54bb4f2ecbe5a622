// The scan: discover -> analyse each image on worker threads -> write rows -> derive issues.
//
// Threads: `threads` workers pull file indices from an atomic counter, analyse one image each
// (read, hash, decode, stats) and push the small result record into a bounded queue. The calling
// thread drains the queue, writes rows in batched transactions and reports progress, so pixels
// never outlive their worker and memory stays flat whatever the dataset size.
#include "vislint/scan.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "common/bounded_queue.h"
#include "common/clock.h"
#include "common/fault.h"
#include "common/median.h"
#include "common/text.h"
#include "embed/embedder.h"
#include "graph/duplicates.h"
#include "graph/labels.h"
#include "graph/similarity.h"
#include "index/knn_index.h"
#include "io/discover.h"
#include "pipeline/analyze.h"
#include "pipeline/items.h"
#include "quality/flags.h"
#include "store/db.h"
#include "store/features.h"
#include "store/work_dir.h"
#include "vislint/issue.h"

namespace fs = std::filesystem;

namespace vislint {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWorkingSide = 256;
constexpr const char* kIndexName = "index.faiss";

double seconds_since(Clock::time_point t) {
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
int inference_streams(int threads) { return threads; }

// Everything per-image analysis depends on besides the file: if it changes, a re-scan must
// re-analyse every image instead of reusing rows.
std::string analysis_signature(const ScanOptions& o, const embed::ModelSpec* model) {
    // The decoder revision: bumped whenever a file may now get another status or other pixels
    // (2: independent decodes, libpng, CMYK via TurboJPEG, animated WebP, memory limits), so
    // rows of an older decoder are never reused.
    constexpr int kDecoderRevision = 2;
    // The same for the stats and perceptual hashes (2: dhash via the 32 x 32 thumbnail).
    constexpr int kHashRevision = 2;
    return std::string("vislint ") + VISLINT_VERSION + "; decoder " + std::to_string(kDecoderRevision) +
           "; hashes " + std::to_string(kHashRevision) + "; working_side " +
           std::to_string(kWorkingSide) + "; max_pixels " + std::to_string(o.max_pixels) +
           "; max_image_memory_mb " + std::to_string(o.max_image_memory_mb) +
           "; model " + (model ? model->id : "none");
}

void check_work_dir(const ScanOptions& o) {
    std::error_code ec;
    fs::path work = fs::weakly_canonical(fs::absolute(o.work_dir), ec);
    for (const std::string& in : o.inputs) {
        fs::path root = fs::weakly_canonical(fs::absolute(in), ec);
        if (!fs::is_directory(root)) continue;
        auto [w, r] = std::mismatch(work.begin(), work.end(), root.begin(), root.end());
        if (r == root.end())
            throw Error("work dir " + o.work_dir + " is inside input folder " + in +
                        "; vislint never writes into its inputs: choose a work dir outside them");
    }
    fs::create_directories(o.work_dir, ec);
    if (ec || !fs::is_directory(o.work_dir))
        throw Error("cannot create work dir " + o.work_dir + ": " + ec.message());
}

struct Planned {
    std::vector<store::ImageRecord> todo; // to analyse (id, path, size, mtime set)
    uint64_t reused = 0;
    std::vector<int64_t> removed_ids;
};

// `features_path`: with a model, the features file whose rows reused images must have intact.
Planned plan(store::Db& db, const std::vector<pipeline::Item>& items, bool reuse,
             const std::string& features_path, Reporter& rep) {
    struct Known {
        int64_t id, size, mtime;
        std::string box;
    };
    std::unordered_map<std::string, Known> known;
    int64_t next_id = 0;
    std::vector<int64_t> embedded;
    {
        store::Stmt s(db.handle(), "SELECT id, path, file_size, mtime_ns, box, has_embedding FROM images");
        while (s.step()) {
            known[s.text(1)] = {s.int64(0), s.is_null(2) ? -1 : s.int64(2), s.int64(3), s.text(4)};
            next_id = std::max(next_id, s.int64(0) + 1);
            if (s.int64(5) != 0) embedded.push_back(s.int64(0));
        }
    }
    // Commits follow the vectors' fdatasync, so a bad row here means damage from outside (or a
    // crash of an older version): re-analyse those images rather than trust the row.
    std::unordered_set<int64_t> bad;
    if (reuse && !features_path.empty()) {
        for (int64_t id : store::bad_feature_rows(features_path, embedded)) bad.insert(id);
        if (!bad.empty())
            rep.log("warning", std::to_string(bad.size()) + " embedding(s) in " + features_path +
                                   " are damaged or missing: those images are analysed again");
    }
    Planned p;
    for (size_t i = 0; i < items.size(); ++i) {
        if (!rep.report("index", i + 1, items.size())) throw Cancelled("cancelled while indexing");
        store::ImageRecord r;
        r.path = items[i].path;
        r.source = items[i].source;
        r.box = items[i].box;
        struct stat st;
        if (::stat((r.source.empty() ? r.path : r.source).c_str(), &st) == 0) {
            r.file_size = st.st_size;
            r.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        }
        auto it = known.find(r.path);
        if (it != known.end()) {
            r.id = it->second.id;
            bool unchanged = reuse && r.file_size >= 0 && it->second.size == r.file_size &&
                             it->second.mtime == r.mtime_ns && it->second.box == r.box &&
                             !bad.count(r.id);
            known.erase(it);
            if (unchanged) {
                ++p.reused;
                continue;
            }
        } else {
            r.id = next_id++;
        }
        p.todo.push_back(std::move(r));
    }
    for (const auto& [path, k] : known) p.removed_ids.push_back(k.id);
    return p;
}

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
};

// Analyses `todo` and writes each record as it arrives.
//
// decode workers ──(model inputs, bounded)──► inference workers ──► done queue ──► this thread
//        └──────────── broken images / hash-only mode ──────────────┘
// The inference workers share one Embedder (one compiled model), each driving its own infer
// request, and form batches from whatever the decoders have ready, so decoding and inference
// overlap and at most (queue capacity + batch) model inputs exist at any time.
void analyse_all(store::Db& db, std::vector<store::ImageRecord>& todo, AnalyseContext& ctx,
                 Reporter& rep, bool* cancelled) {
    const size_t total = todo.size();
    if (total == 0) return;
    pipeline::AnalyzeOptions aopt;
    aopt.max_pixels = ctx.max_pixels;
    aopt.max_bytes = ctx.max_image_bytes;
    aopt.working_side = kWorkingSide;
    aopt.model_size = ctx.model ? ctx.model->input_size : 0;
    aopt.box_margin = ctx.box_margin;

    struct Job {
        size_t index;
        cv::Mat input;
    };
    const int threads = ctx.threads;
    const int n_embed = ctx.model ? ctx.embedder->streams() : 0;
    const int dim = n_embed ? ctx.embedder->dim() : 0;

    // Units of work: one file, or all crops of one file (consecutive in `todo`, decoded once).
    std::vector<size_t> unit_start;
    for (size_t i = 0; i < total; ++i)
        if (i == 0 || todo[i].source.empty() || todo[i].source != todo[i - 1].source) unit_start.push_back(i);
    unit_start.push_back(total);

    BoundedQueue<size_t> done(size_t(threads) * 64);
    BoundedQueue<Job> jobs(size_t(std::max(1, n_embed)) * size_t(ctx.batch_size) * 2);
    std::vector<std::vector<float>> embedding(ctx.model ? total : 0);
    const std::vector<float> embedding_none;
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::exception_ptr worker_error;
    std::mutex error_mu;
    auto guarded = [&](auto&& body) {
        try {
            body();
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (!worker_error) worker_error = std::current_exception();
            stop = true;
        }
    };
    auto decoder = [&] {
        guarded([&] {
            auto push = [&](size_t i, cv::Mat&& input) {
                return (ctx.model && !input.empty()) ? jobs.push({i, std::move(input)}) : done.push(i);
            };
            std::vector<cv::Mat> inputs;
            for (;;) {
                if (stop.load()) break;
                size_t u = next.fetch_add(1);
                if (u + 1 >= unit_start.size()) break;
                const size_t b = unit_start[u], e = unit_start[u + 1];
                bool pushed = true;
                if (todo[b].source.empty()) {
                    cv::Mat input;
                    pipeline::analyze_file(aopt, &todo[b], ctx.model ? &input : nullptr);
                    pushed = push(b, std::move(input));
                } else {
                    pipeline::analyze_boxes(aopt, &todo[b], e - b, ctx.model ? &inputs : nullptr);
                    for (size_t i = b; i < e && pushed; ++i)
                        pushed = push(i, ctx.model ? std::move(inputs[i - b]) : cv::Mat());
                }
                if (!pushed) break;
            }
        });
    };
    auto inferrer = [&](int w) {
        guarded([&] {
            std::vector<Job> batch;
            std::vector<cv::Mat> inputs;
            std::vector<float> out;
            for (;;) {
                batch.clear();
                std::optional<Job> first = jobs.pop();
                if (!first) break;
                batch.push_back(std::move(*first));
                while (int(batch.size()) < ctx.batch_size) {
                    std::optional<Job> more = jobs.pop_for(2);
                    if (!more) break;
                    batch.push_back(std::move(*more));
                }
                inputs.clear();
                for (auto& j : batch) inputs.push_back(j.input);
                ctx.embedder->embed(inputs, &out);
                for (size_t b = 0; b < batch.size(); ++b) {
                    embedding[batch[b].index].assign(out.begin() + long(b * dim), out.begin() + long((b + 1) * dim));
                    if (!done.push(batch[b].index)) return;
                }
            }
        });
    };

    const int saved_cv_threads = cv::getNumThreads();
    if (n_embed) cv::setNumThreads(1);
    std::vector<std::thread> decoders, inferrers;
    for (int t = 0; t < threads; ++t) decoders.emplace_back(decoder);
    for (int t = 0; t < n_embed; ++t) inferrers.emplace_back(inferrer, t);
    std::thread closer([&] {
        for (auto& th : decoders) th.join();
        jobs.close();
        for (auto& th : inferrers) th.join();
        done.close();
    });
    // Whatever happens on this thread, the workers are stopped and joined before returning.
    struct Joiner {
        std::atomic<bool>& stop;
        BoundedQueue<Job>& jobs;
        BoundedQueue<size_t>& done;
        std::thread& closer;
        int cv_threads;
        ~Joiner() {
            stop = true;
            jobs.close();
            done.close();
            if (closer.joinable()) closer.join();
            cv::setNumThreads(cv_threads);
        }
    } joiner{stop, jobs, done, closer, saved_cv_threads};

    store::Stmt upsert(db.handle(), store::image_upsert_sql());
    // The rows of a transaction say has_embedding = 1 only once their vectors are on disk.
    auto commit = [&] {
        if (ctx.features) ctx.features->sync();
        fault_point("commit");
        db.exec("COMMIT");
    };
    db.exec("BEGIN");
    auto last_commit = Clock::now();
    const int commit_every = fault_commit_every();
    size_t written = 0;
    for (;;) {
        std::optional<size_t> i = done.pop_for(100);
        if (i) {
            store::ImageRecord& r = todo[*i];
            if (ctx.features) {
                // An all-zero row is the embedder's "no usable output" (zeros, NaN or inf): such
                // an image keeps its other checks but stays out of the index (see derive_issues).
                const auto& e = embedding.empty() ? embedding_none : embedding[*i];
                if (std::any_of(e.begin(), e.end(), [](float v) { return v != 0; })) {
                    ctx.features->write_row(r.id, e.data());
                    r.has_embedding = true;
                } else {
                    ctx.features->zero_row(r.id);
                }
                fault_point("features");
            }
            store::bind_image(upsert, r);
            upsert.run();
            fault_point("analyse");
            r = store::ImageRecord{}; // drop the record: memory stays flat
            if (!embedding.empty()) std::vector<float>().swap(embedding[*i]);
            ++written;
        } else if (done.closed_and_empty()) {
            break;
        }
        if (Clock::now() - last_commit > std::chrono::seconds(1) ||
            (i && commit_every > 0 && written % size_t(commit_every) == 0)) {
            commit();
            db.exec("BEGIN");
            last_commit = Clock::now();
        }
        if (!stop.load() && !rep.report("analyse", written, total, written == total)) {
            stop = true;
            *cancelled = true;
            // Workers finish the image in hand; the records they push are still written.
        }
    }
    closer.join();
    commit();
    if (worker_error) std::rethrow_exception(worker_error);
}


// The kNN graph over all embedded images, saved with its id mapping for `vislint similar`.
struct Embedded {
    std::vector<size_t> positions; // index into `items` for each indexed vector
    std::vector<int64_t> ids;
    std::vector<float> sims;
    int k = 0;
    std::string description; // of the index
};

Embedded build_knn(store::Db& db, const ScanOptions& o, const std::vector<graph::DupItem>& items,
                   const std::vector<bool>& embedded, int threads, Reporter& rep,
                   std::map<std::string, double>* timings) {
    Embedded e;
    std::vector<int64_t> image_ids;
    for (size_t i = 0; i < items.size(); ++i)
        if (embedded[i]) {
            e.positions.push_back(i);
            image_ids.push_back(items[i].id);
        }
    db.exec("DELETE FROM embedding_index");
    const std::string index_path = (fs::path(o.work_dir) / kIndexName).string();
    if (image_ids.empty()) {
        fs::remove(index_path);
        return e;
    }
    // Vectors are read from the memory-mapped features file in batches, by index position.
    const store::FeatureReader features((fs::path(o.work_dir) / store::kFeaturesName).string());
    std::vector<int64_t> buf;
    const index::RowSource rows = [&](const int64_t* pos, int64_t count, float* out) {
        buf.resize(size_t(count));
        for (int64_t i = 0; i < count; ++i) buf[size_t(i)] = image_ids[size_t(pos[i])];
        features.read(buf.data(), count, out);
    };
    auto progress = [&](const char* stage, uint64_t done, uint64_t total) {
        fault_point("knn");
        return rep.report(stage, done, total);
    };
    index::IndexOptions iopt;
    iopt.threads = threads;
    if (o.index_dim == 0) {
        iopt.reduce_dim = 0;
    } else if (o.index_dim > 0) {
        iopt.reduce_dim = o.index_dim;
        iopt.reduce_min = 0;
    }
    auto t1 = Clock::now();
    index::KnnIndex idx = index::KnnIndex::build(rows, int64_t(image_ids.size()), features.dim(), iopt, progress);
    (*timings)["knn_build"] = seconds_since(t1);
    e.description = idx.description();
    auto t2 = Clock::now();
    e.k = std::min<int>(o.k, int(image_ids.size()) - 1);
    if (e.k > 0) {
        index::KnnGraph g = idx.self_graph(rows, e.k, progress);
        e.ids = std::move(g.ids);
        e.sims = std::move(g.sims);
    }
    (*timings)["knn_graph"] = seconds_since(t2);
    fault_point("knn");
    idx.save(index_path);
    store::Stmt ins(db.handle(), "INSERT INTO embedding_index(pos, image_id) VALUES(?, ?)");
    for (size_t p = 0; p < image_ids.size(); ++p) ins.bind(1, int64_t(p)).bind(2, image_ids[p]).run();
    // `vislint similar` refuses an index built under another analysis (model, input size).
    db.set_meta("index_signature", db.meta("analysis_signature"));
    return e;
}

// label_issue rows from the kNN vote; every labelled image gets its score and the vote's winner
// in `labels`, and the flagged ones their voters in `label_votes`.
template <typename Add>
void find_label_issues(store::Db& db, const graph::Neighbours& nn, const std::vector<graph::DupItem>& sub,
                       const std::vector<std::string>& label_of, const Thresholds& t, Add&& add) {
    std::unordered_map<std::string, int> class_of;
    std::vector<std::string> names;
    std::vector<int> labels(sub.size(), -1);
    for (size_t p = 0; p < sub.size(); ++p) {
        size_t id = size_t(sub[p].id);
        if (id >= label_of.size() || label_of[id].empty()) continue;
        auto [it, inserted] = class_of.emplace(label_of[id], int(names.size()));
        if (inserted) names.push_back(label_of[id]);
        labels[p] = it->second;
    }
    if (names.size() < 2) return; // one class: nothing to disagree with
    store::Stmt upd(db.handle(), "UPDATE labels SET label_score = ?, suggested = ? WHERE image_id = ?");
    store::Stmt votes(db.handle(), "INSERT INTO label_votes(image_id, rank, neighbour_id) VALUES(?,?,?)");
    for (const graph::LabelVote& v : graph::vote_labels(nn, labels, int(names.size()))) {
        const int64_t id = sub[v.position].id;
        upd.bind(1, v.score).bind(2, names[size_t(v.suggested)]).bind(3, id).run();
        if (v.suggested == v.given || v.score < t.label_issue) continue;
        int64_t other = -1;
        for (size_t q : v.voters)
            if (labels[q] == v.suggested) {
                other = sub[q].id;
                break;
            }
        add("label_issue", id, other >= 0 ? &other : nullptr, v.score, &t.label_issue, names[size_t(v.suggested)]);
        for (size_t r = 0; r < v.voters.size(); ++r)
            votes.bind(1, id).bind(2, int64_t(r)).bind(3, sub[v.voters[r]].id).run();
    }
}

// Rewrites the labels table: label and split of every item of this scan, by image id.
void write_labels(store::Db& db, const std::vector<pipeline::Item>& items) {
    std::unordered_map<std::string, const pipeline::Item*> by_path;
    for (const auto& it : items)
        if (!it.label.empty() || !it.split.empty()) by_path.emplace(it.path, &it);
    db.exec("BEGIN; DELETE FROM labels;");
    store::Stmt sel(db.handle(), "SELECT id, path FROM images");
    store::Stmt ins(db.handle(), "INSERT INTO labels(image_id, label, split) VALUES(?,?,?)");
    while (sel.step()) {
        auto it = by_path.find(sel.text(1));
        if (it == by_path.end()) continue;
        ins.bind(1, sel.int64(0));
        if (it->second->label.empty()) ins.bind_null(2); else ins.bind(2, it->second->label);
        if (it->second->split.empty()) ins.bind_null(3); else ins.bind(3, it->second->split);
        ins.run();
    }
    db.exec("COMMIT");
}

// More near-duplicate pairs than images usually means the rules cannot tell look-alikes from
// copies on this data (on Fashion-MNIST's 28-px silhouettes they paired 83 k of 75 M pairs, 6.8
// per image; on clip art and photos it is a few per hundred images). Say so, and how to tighten.
void warn_if_not_discriminative(size_t pairs, size_t images, bool hash_only, Reporter& rep) {
    if (images < 100 || pairs < images) return;
    char msg[512];
    std::snprintf(msg, sizeof(msg),
                  "near_duplicate: %zu pairs among %zu images (%.1f per image). That many usually means "
                  "the rule cannot tell look-alikes from copies on this data (small, simple or very uniform "
                  "images): look at a few pairs, and if they are not copies re-scan into the same work dir "
                  "with stricter thresholds, e.g. %s--hash-radius 4 --dhash-radius 4 (no image is decoded again)",
                  pairs, images, double(pairs) / double(images),
                  hash_only ? "" : "--near-duplicate-threshold 0.95 ");
    rep.log("warning", msg);
}

// Re-derives every issue row and duplicate group from the images table.
void derive_issues(store::Db& db, const ScanOptions& o, int threads, Reporter& rep,
                   std::map<std::string, double>* timings, std::string* index_description) {
    auto t0 = Clock::now();
    std::vector<store::ImageRecord> images = store::read_images(db);
    const Thresholds& t = o.thresholds;

    db.exec("BEGIN");
    db.exec("DELETE FROM issues; DELETE FROM duplicate_groups;");
    store::Stmt ins(db.handle(), "INSERT INTO issues(type, image_id, other_id, score, threshold, detail) "
                                 "VALUES(?,?,?,?,?,?)");
    auto add = [&](const std::string& type, int64_t id, const int64_t* other, double score,
                   const double* threshold, const std::string& detail) {
        ins.bind(1, type).bind(2, id);
        if (other) ins.bind(3, *other); else ins.bind_null(3);
        ins.bind(4, score);
        if (threshold) ins.bind(5, *threshold); else ins.bind_null(5);
        ins.bind(6, detail).run();
        fault_point("derive");
    };

    std::vector<double> areas;
    for (const auto& r : images)
        if (r.has_pixels) areas.push_back(double(r.width) * r.height);
    const double median_area = median(areas);

    store::Stmt gray(db.handle(), "UPDATE images SET is_grayscale = ? WHERE id = ?");
    std::vector<graph::DupItem> items;
    std::vector<bool> embedded;
    for (const auto& r : images) {
        if (!r.status.ok()) {
            add("broken", r.id, nullptr, 1.0, nullptr, r.status.to_string());
            continue;
        }
        if (r.ext_format != "unknown" && r.ext_format != r.format)
            add("wrong_extension", r.id, nullptr, 1.0, nullptr,
                "content is " + r.format + " but the extension says " + r.ext_format);
        quality::ImageFacts facts{r.width, r.height, r.channels, r.stats};
        gray.bind(1, int64_t(quality::is_grayscale(facts, t))).bind(2, r.id).run();
        for (const auto& f : quality::quality_flags(facts, t, median_area))
            add(f.type, r.id, nullptr, f.score, &f.threshold, f.detail);
        graph::DupItem it;
        it.id = r.id;
        it.file_hash = r.file_hash;
        it.pixel_hash = r.pixel_hash;
        it.phash = r.phash;
        it.dhash = r.dhash;
        it.hashable = r.stats.contrast >= 1.0; // a flat image's pHash is all zeros
        it.width = r.width;
        it.height = r.height;
        it.file_size = r.file_size;
        items.push_back(it);
        embedded.push_back(r.has_embedding);
    }
    if (o.model.model != "none") {
        // With a model every analysed image gets an embedding unless the model's output for it
        // was all zeros or not finite: say so on every scan (rows are reused silently otherwise).
        size_t unusable = 0;
        std::string example;
        for (const auto& r : images)
            if (r.status.ok() && !r.has_embedding && unusable++ == 0) example = r.path;
        if (unusable)
            rep.log("warning", (o.model.model == "default" ? std::string("the default model") : "model " + o.model.model) +
                                   ": no usable embedding (all zeros, NaN or infinity) for " +
                                   std::to_string(unusable) + " image(s), e.g. " + example +
                                   "; they keep their other checks but are left out of near-duplicate, cluster, "
                                   "outlier and label checks");
    }
    (*timings)["flags"] = seconds_since(t0);
    rep.report("duplicates", 0, 1, true);

    auto t1 = Clock::now();
    store::Stmt grp(db.handle(), "INSERT INTO duplicate_groups(group_id, kind, image_id, is_keeper) VALUES(?,?,?,?)");
    int64_t group_id = 0;
    auto write_groups = [&](const std::vector<graph::DupGroup>& groups) {
        for (const auto& g : groups) {
            for (int64_t id : g.members)
                grp.bind(1, group_id).bind(2, g.kind).bind(3, id).bind(4, int64_t(id == g.keeper)).run();
            ++group_id;
        }
    };
    graph::ExactResult exact = graph::find_exact(items);
    const double one = 1.0;
    for (const auto& p : exact.pairs) add("exact_duplicate", p.a, &p.b, p.score, &one, p.detail);
    write_groups(exact.groups);
    (*timings)["exact_duplicates"] = seconds_since(t1);

    auto t2 = Clock::now();
    db.exec("DELETE FROM clusters");
    db.exec("UPDATE images SET outlier_score = NULL, outlier_z = NULL, nn_id = NULL, nn_sim = NULL");
    // Labels and splits by image id.
    std::vector<std::string> label_of, split_of;
    {
        store::Stmt ls(db.handle(), "SELECT image_id, label, split FROM labels");
        while (ls.step()) {
            size_t id = size_t(ls.int64(0));
            if (id >= label_of.size()) {
                label_of.resize(id + 1);
                split_of.resize(id + 1);
            }
            label_of[id] = ls.text(1);
            split_of[id] = ls.text(2);
        }
    }
    db.exec("UPDATE labels SET label_score = NULL, suggested = NULL; DELETE FROM label_votes;");
    graph::NearResult near;
    if (o.model.model == "none") {
        near = graph::find_near_by_hash(items, exact, t.hash_radius, t.dhash_radius, threads);
        for (const auto& p : near.pairs) add("near_duplicate", p.a, &p.b, p.score, &p.threshold, p.detail);
        write_groups(near.groups);
    } else {
        Embedded e = build_knn(db, o, items, embedded, threads, rep, timings);
        *index_description = e.description;
        // Findings are computed over the embedded subset, by position in `sub`.
        std::vector<graph::DupItem> sub;
        for (size_t p : e.positions) sub.push_back(items[p]);
        graph::Neighbours nn{int64_t(sub.size()), e.k, e.ids.data(), e.sims.data()};
        // Perceptual-hash matches count too (scored on the hash scale, 1 - pHash distance / 64).
        std::vector<graph::IndexPair> hp = graph::hash_pairs(sub, t.hash_radius, t.dhash_radius, threads);
        graph::SimilarityResult res = graph::analyse_similarity(nn, sub, exact, t, hp);
        for (const auto& p : res.near.pairs) add("near_duplicate", p.a, &p.b, p.score, &p.threshold, p.detail);
        write_groups(res.near.groups);
        store::Stmt cl(db.handle(), "INSERT INTO clusters(cluster_id, image_id) VALUES(?, ?)");
        for (size_t c = 0; c < res.clusters.size(); ++c)
            for (int64_t id : res.clusters[c]) cl.bind(1, int64_t(c)).bind(2, id).run();
        store::Stmt iso(db.handle(), "UPDATE images SET outlier_score = ?, outlier_z = ?, nn_id = ?, nn_sim = ? WHERE id = ?");
        for (const auto& s : res.isolation) {
            iso.bind(1, s.score).bind(2, s.z);
            if (s.nearest >= 0) iso.bind(3, sub[size_t(s.nearest)].id).bind(4, double(s.nearest_sim));
            else iso.bind_null(3).bind_null(4);
            iso.bind(5, sub[s.position].id).run();
        }
        for (size_t p : res.outliers) {
            const auto& s = res.isolation[p];
            int64_t other = s.nearest >= 0 ? sub[size_t(s.nearest)].id : -1;
            char detail[160];
            std::snprintf(detail, sizeof(detail),
                          "isolation %.4f (1 - mean similarity to its nearest neighbours), robust z %.1f > %.1f",
                          s.score, s.z, t.outlier_z);
            add("outlier", sub[p].id, other >= 0 ? &other : nullptr, s.score, &res.outlier_threshold, detail);
        }
        if (!label_of.empty()) find_label_issues(db, nn, sub, label_of, t, add);
        near = std::move(res.near);
    }
    (*timings)["similarity"] = seconds_since(t2);
    warn_if_not_discriminative(near.pairs.size(), items.size(), o.model.model == "none", rep);
    if (!split_of.empty()) {
        for (const auto& l : graph::find_leaks(exact, near, split_of))
            add("leak", l.a, &l.b, l.score, &l.threshold, l.detail);
    }
    db.set_meta("checksum", store::content_checksum(db));
    fault_point("commit");
    db.exec("COMMIT");
    rep.report("duplicates", 1, 1, true);
}

void write_run_json(const ScanOptions& o, const ScanSummary& s, int threads, const std::string& status,
                    const std::string& started, const embed::ModelSpec* model) {
    const Thresholds& t = o.thresholds;
    nlohmann::json j;
    j["version"] = VISLINT_VERSION;
    j["status"] = status;
    j["started_at"] = started;
    j["finished_at"] = now_iso8601();
    j["options"] = {{"inputs", o.inputs},
                    {"model", o.model.model},
                    {"model_input_size", o.model.input_size},
                    {"batch_size", o.model.batch_size},
                    {"precision", o.model.precision},
                    {"k", o.k},
                    {"index_dim", o.index_dim},
                    {"threads", threads},
                    {"max_pixels", o.max_pixels},
                    {"max_image_memory_mb", o.max_image_memory_mb},
                    {"working_side", kWorkingSide},
                    {"thresholds",
                     {{"blurry", t.blurry},
                      {"dark", t.dark},
                      {"bright", t.bright},
                      {"low_information", t.low_information},
                      {"grayscale_colour_fraction", t.grayscale_colour_fraction},
                      {"odd_aspect_ratio", t.odd_aspect_ratio},
                      {"odd_size_ratio", t.odd_size_ratio},
                      {"odd_size_min_side", t.odd_size_min_side},
                      {"hash_radius", t.hash_radius},
                      {"dhash_radius", t.dhash_radius},
                      {"near_duplicate", t.near_duplicate},
                      {"cluster", t.cluster},
                      {"outlier_z", t.outlier_z},
                      {"label_issue", t.label_issue}}},
                    {"labels",
                     {{"labels", o.labels.labels},
                      {"label_rows", o.labels.rows.size()},
                      {"coco", o.labels.coco},
                      {"yolo", o.labels.yolo},
                      {"objects", o.labels.objects},
                      {"min_box_side", o.labels.min_box_side},
                      {"box_margin", o.labels.box_margin},
                      {"splits", o.labels.auto_splits ? "auto" : "none"}}}};
    j["counts"] = {{"images", s.images},       {"analysed", s.analysed},
                   {"reused", s.reused},       {"removed", s.removed},
                   {"skipped_files", s.skipped_files}, {"labelled", s.labelled},
                   {"missing_label_files", s.missing_label_files}, {"skipped_boxes", s.skipped_boxes},
                   {"issues", s.issue_counts}};
    j["index"] = s.index;
    j["timings_seconds"] = s.timings;
    j["warnings"] = s.warnings;
    // What ran the model and on what, so figures from two machines can be told apart.
    j["inference"] = {{"precision", model ? model->precision : "none"},
                      {"precision_option", o.model.precision},
                      {"runtime", embed::runtime_version()},
                      {"streams", model ? inference_streams(threads) : 0},
                      {"cpu_flags", embed::cpu_flags()},
                      {"cpu_capabilities", embed::runtime_capabilities()}};
    std::string path = (fs::path(o.work_dir) / "run.json").string();
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        // Inputs, label files and warnings carry file names of any bytes: printed as \xNN.
        out << dump_printable(j, 2) << "\n";
        if (!out) throw Error("cannot write " + path);
    }
    fault_point("run_json");
    fs::rename(tmp, path);
}

} // namespace

const char* version() { return VISLINT_VERSION; }

void validate(const ScanOptions& o) {
    const Thresholds& t = o.thresholds;
    auto need = [](bool ok, const std::string& msg) {
        if (!ok) throw Error(msg);
    };
    const LabelOptions& lo = o.labels;
    // NaN fails every range check below only by accident of how each is written, and infinity
    // passes the one-sided ones: reject both first, by name.
    for (const auto& [value, name] : {std::pair{t.blurry, "--blurry-threshold"},
                                      {t.dark, "--dark-threshold"},
                                      {t.bright, "--bright-threshold"},
                                      {t.low_information, "--low-information-threshold"},
                                      {t.grayscale_colour_fraction, "--grayscale-threshold"},
                                      {t.odd_aspect_ratio, "--aspect-ratio-threshold"},
                                      {t.odd_size_ratio, "--odd-size-ratio"},
                                      {t.near_duplicate, "--near-duplicate-threshold"},
                                      {t.cluster, "--cluster-threshold"},
                                      {t.outlier_z, "--outlier-z"},
                                      {t.label_issue, "--label-issue-threshold"},
                                      {lo.box_margin, "--box-margin"}}) {
        if (!std::isfinite(value)) {
            char got[32];
            std::snprintf(got, sizeof(got), "%g", value);
            throw Error(std::string(name) + " must be a finite number (got " + got + ")");
        }
    }
    embed::check_model_options(o.model);
    need(!o.inputs.empty() || (!lo.labels.empty() && lo.labels != "folder") || !lo.rows.empty() ||
             !lo.coco.empty() || !lo.yolo.empty(),
         "no input given: pass one or more folders, images or list files");
    need(!lo.objects || !lo.coco.empty() || !lo.yolo.empty(), "--objects needs boxes: pass --coco FILE or --yolo DIR");
    need(lo.min_box_side >= 1, "--min-box-side must be >= 1");
    need(lo.box_margin >= 0 && lo.box_margin <= 1, "--box-margin must be between 0 and 1");
    need(t.label_issue >= 0 && t.label_issue <= 1, "--label-issue-threshold must be between 0 and 1");
    need(!o.work_dir.empty(), "no work dir given: pass -o WORK_DIR");
    need(!o.model.model.empty(), "--model must be 'default', 'none' or a path to an .onnx or OpenVINO .xml file");
    need(o.model.batch_size >= 1 && o.model.batch_size <= 1024, "--batch-size must be between 1 and 1024");
    need(o.model.input_size >= 0 && o.model.input_size <= 1024, "--model-size must be between 16 and 1024");
    need(o.k >= 1 && o.k <= 1000, "-k must be between 1 and 1000");
    need(o.index_dim >= -1 && o.index_dim <= 65536,
         "--index-dim must be -1 (automatic), 0 (never reduce) or a dimension up to 65536");
    need(t.near_duplicate > 0 && t.near_duplicate <= 1, "--near-duplicate-threshold must be in (0, 1]");
    need(t.cluster > 0 && t.cluster <= 1, "--cluster-threshold must be in (0, 1]");
    need(t.outlier_z > 0, "--outlier-z must be positive");
    need(o.threads >= 0 && o.threads <= 1024, "--threads must be between 0 (all cores) and 1024");
    need(o.max_pixels >= 1 && o.max_pixels <= kMaxPixelsLimit,
         "--max-pixels must be a whole number of pixels between 1 and " + std::to_string(kMaxPixelsLimit));
    need(o.max_image_memory_mb >= 1 && o.max_image_memory_mb <= (int64_t(1) << 30),
         "--max-image-memory must be between 1 and 1073741824 (MiB)");
    need(t.blurry >= 0, "--blurry-threshold must be >= 0");
    need(t.dark >= 0 && t.dark <= 255, "--dark-threshold must be between 0 and 255");
    need(t.bright >= 0 && t.bright <= 255, "--bright-threshold must be between 0 and 255");
        need(t.low_information >= 0 && t.low_information <= 8,
         "--low-information-threshold must be between 0 and 8 bits");
    need(t.grayscale_colour_fraction >= 0 && t.grayscale_colour_fraction <= 1,
         "--grayscale-threshold must be between 0 and 1");
    need(t.odd_aspect_ratio >= 1, "--aspect-ratio-threshold must be >= 1");
    need(t.odd_size_ratio >= 1, "--odd-size-ratio must be >= 1");
    need(t.odd_size_min_side >= 0, "--min-side must be >= 0");
    need(t.hash_radius >= 0 && t.hash_radius <= 32, "--hash-radius must be between 0 and 32");
    need(t.dhash_radius >= 0 && t.dhash_radius <= 64, "--dhash-radius must be between 0 and 64");
}

namespace {

// The work dir's run_state (meta): "running" from the start of a scan until it ends as
// "complete", "cancelled" or "failed"; readers warn unless it is "complete". A scan that dies
// (kill -9, power loss, disk full) leaves "running".
class RunState {
public:
    RunState(store::Db& db, const Reporter& rep) : db_(db), rep_(rep) {}
    // Reached without end(): the scan is unwinding, cancelled (progress said stop) or failed.
    ~RunState() {
        if (ended_) return;
        try { // best effort: with a full disk this fails and "running" stays, which also warns
            if (sqlite3_get_autocommit(db_.handle()) == 0) db_.exec("ROLLBACK"); // cut short mid-transaction
            db_.set_meta("run_state", rep_.cancel_requested() ? "cancelled" : "failed");
        } catch (...) {
        }
    }
    void end(const char* state) {
        db_.set_meta("run_state", state);
        ended_ = true;
    }

private:
    store::Db& db_;
    const Reporter& rep_;
    bool ended_ = false;
};

} // namespace

ScanSummary scan(const ScanOptions& options, Progress* progress) {
    validate(options);
    const std::string started = now_iso8601();
    Reporter rep(progress);
    ScanSummary summary;
    const int threads = options.threads > 0
                            ? options.threads
                            : std::max(1, int(std::thread::hardware_concurrency()));

    // A second scan into the same work dir stops here, before any work (an existing work dir is
    // locked before discovery, a new one as soon as it is created).
    std::unique_ptr<store::WorkDirLock> lock;
    if (fs::is_directory(options.work_dir)) lock = std::make_unique<store::WorkDirLock>(options.work_dir);

    auto t0 = Clock::now();
    const LabelOptions& lo = options.labels;
    io::Annotations annotations = pipeline::read_annotations(lo, options.inputs);
    io::Discovery found = io::discover(options.inputs.empty() ? pipeline::inputs_from_labels(lo, annotations)
                                                              : options.inputs,
                                       options.work_dir);
    summary.skipped_files = found.skipped_files;
    for (const auto& w : found.warnings) rep.log("warning", w);
    if (found.skipped_files > 0) {
        std::string msg = "skipped " + std::to_string(found.skipped_files) +
                          " file(s) without an image extension, e.g. " + found.skipped_examples[0];
        rep.log("info", msg);
    }
    pipeline::ItemPlan items = pipeline::build_items(lo, found, std::move(annotations));
    for (const auto& w : items.warnings) rep.log("warning", w);
    summary.labelled = items.labelled;
    summary.missing_label_files = items.missing_label_files;
    summary.skipped_boxes = items.skipped_boxes;
    summary.timings["discover"] = seconds_since(t0);
    check_work_dir(options);
    if (!lock) lock = std::make_unique<store::WorkDirLock>(options.work_dir);
    store::remove_tmp_files(options.work_dir);
    if (options.rebuild) store::remove_results(options.work_dir);

    std::unique_ptr<embed::ModelSpec> model;
    if (options.model.model != "none")
        model = std::make_unique<embed::ModelSpec>(embed::resolve_model(options.model));

    summary.db_path = (fs::path(options.work_dir) / store::kDbName).string();
    store::Db db(summary.db_path, false);
    // Damaged rows would be reused as if they were analysis results: refuse, and name the fix.
    const std::string stored = db.meta("checksum");
    if ((!stored.empty() || db.meta("run_state") == "complete") && stored != store::content_checksum(db))
        store::throw_damaged(summary.db_path, "its rows do not match the checksum the scan stored");
    RunState run_state(db, rep);
    const std::string signature = analysis_signature(options, model.get());
    const std::string features_path = (fs::path(options.work_dir) / store::kFeaturesName).string();
    const bool reuse = db.meta("analysis_signature") == signature &&
                       (!model || store::feature_file_shape(features_path).second > 0);

    auto t1 = Clock::now();
    Planned planned = plan(db, items.items, reuse, model ? features_path : "", rep);
    summary.reused = planned.reused;
    summary.removed = planned.removed_ids.size();
    db.exec("BEGIN");
    db.set_meta("run_state", "running");
    db.exec("DELETE FROM meta WHERE key = 'checksum'");
    // Rows of another analysis must never pass for this one's if this scan is cut short (the
    // features file is reset below): mark them changed so that a resumed scan re-analyses them.
    if (!reuse) db.exec("UPDATE images SET mtime_ns = -1, has_embedding = 0");
    db.set_meta("analysis_signature", signature);
    db.set_meta("model", model ? model->id : "none");
    // JSON holds UTF-8 only: a --model path of other bytes is kept with U+FFFD in their place (so
    // `similar` then reports that model file as not found) rather than ending the scan.
    db.set_meta("model_options", nlohmann::json{{"model", options.model.model},
                                                {"input_size", options.model.input_size},
                                                {"mean", options.model.mean},
                                                {"std", options.model.std},
                                                {"output", options.model.output},
                                                {"precision", options.model.precision}}
                                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    db.exec("COMMIT");
    if (!model) { // hash-only: no stale embeddings or index of another run
        fs::remove(features_path);
        fs::remove(fs::path(options.work_dir) / kIndexName);
        db.exec("DELETE FROM embedding_index; DELETE FROM clusters;");
    }
    summary.timings["index"] = seconds_since(t1);

    auto t2 = Clock::now();
    bool cancelled = false;
    summary.analysed = planned.todo.size();
    {
        AnalyseContext ctx;
        ctx.threads = threads;
        ctx.max_pixels = options.max_pixels;
        ctx.max_image_bytes = options.max_image_memory_mb << 20;
        ctx.model = model.get();
        ctx.batch_size = options.model.batch_size;
        ctx.box_margin = lo.box_margin;
        std::unique_ptr<store::FeatureFile> features;
        std::unique_ptr<embed::Embedder> embedder;
        if (model) {
            // The model tells the dim (a changed model changes the signature, so `reuse` is
            // false and the old file is discarded).
            embedder = std::make_unique<embed::Embedder>(*model, threads, inference_streams(threads));
            ctx.embedder = embedder.get();
            features = std::make_unique<store::FeatureFile>(features_path, embedder->dim(), !reuse);
            for (int64_t id : planned.removed_ids) features->zero_row(id);
            features->sync(); // before the rows go: a crash must not leave vectors of unknown ids
            ctx.features = features.get();
        }
        if (!planned.removed_ids.empty()) {
            db.exec("BEGIN");
            store::Stmt del(db.handle(), "DELETE FROM images WHERE id = ?");
            for (int64_t id : planned.removed_ids) del.bind(1, id).run();
            db.exec("COMMIT");
        }
        analyse_all(db, planned.todo, ctx, rep, &cancelled);
        if (features) {
            store::Stmt mx(db.handle(), "SELECT coalesce(max(id), -1) FROM images");
            mx.step();
            features->close(mx.int64(0) + 1);
        }
    }
    summary.timings["analyse"] = seconds_since(t2);
    if (cancelled) {
        store::Stmt count(db.handle(), "SELECT count(*) FROM images");
        count.step();
        summary.images = uint64_t(count.int64(0));
        summary.warnings = rep.warnings();
        write_run_json(options, summary, threads, "cancelled", started, model.get());
        throw Cancelled("scan cancelled; " + std::to_string(summary.images) +
                        " images are saved in " + options.work_dir + " and a re-run resumes from there");
    }

    auto t3 = Clock::now();
    write_labels(db, items.items);
    std::vector<pipeline::Item>().swap(items.items);
    derive_issues(db, options, threads, rep, &summary.timings, &summary.index);
    summary.timings["issues"] = seconds_since(t3);

    for (const auto& type : issue_types()) summary.issue_counts[type] = 0;
    {
        store::Stmt s(db.handle(), "SELECT type, count(*) FROM issues GROUP BY type");
        while (s.step()) summary.issue_counts[s.text(0)] = uint64_t(s.int64(1));
        store::Stmt c(db.handle(), "SELECT count(*) FROM images");
        c.step();
        summary.images = uint64_t(c.int64(0));
    }
    summary.timings["total"] = seconds_since(t0);
    summary.warnings = rep.warnings();
    run_state.end("complete");
    // One file again (no -wal / -shm), so a copy or a read-only mount of the work dir reads.
    db.leave_wal();
    write_run_json(options, summary, threads, "complete", started, model.get());
    store::remove_tmp_files(options.work_dir);
    return summary;
}

} // namespace vislint
