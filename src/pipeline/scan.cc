// The scan: discover -> plan -> analyse each image on worker threads -> derive issues -> run
// record. This file validates the options and runs the steps (scan_steps.h) in order.
#include "vislint/scan.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "io/discover.h"
#include "pipeline/items.h"
#include "pipeline/scan_steps.h"
#include "store/work_dir.h"
#include "vislint/issue.h"

namespace fs = std::filesystem;

namespace vislint {

using namespace pipeline;

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
    need(o.names.empty() || !o.embeddings.empty(), "--names goes with --embeddings EMB.npy (row i = line i)");
    if (!o.embeddings.empty()) {
        need(o.model.model == "default",
             "--embeddings replaces the model: leave out --model (got --model " + o.model.model + ")");
        need(!o.inputs.empty() || !o.names.empty(),
             "--embeddings needs --names NAMES.txt (one name per row) when no images are given");
        need(o.inputs.empty() || o.names.empty(),
             "--names is for embeddings without images: give either inputs or --names, not both");
        need(!o.inputs.empty() || (lo.labels != "folder" && lo.coco.empty() && lo.yolo.empty() && !lo.objects),
             "with --embeddings and --names the items are names, not files: labels come from a CSV "
             "(path,label[,split] keyed by name); --labels folder, --coco, --yolo and --objects need images");
    }
    need(!o.inputs.empty() || !o.embeddings.empty() || (!lo.labels.empty() && lo.labels != "folder") ||
             !lo.rows.empty() || !lo.coco.empty() || !lo.yolo.empty(),
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
    need(t.small_copy >= 0 && t.small_copy <= 1, "--small-copy-threshold must be between 0 and 1");
    need(t.copy_candidate >= -1 && t.copy_candidate <= 1, "--copy-candidate-threshold must be between -1 and 1");
}

namespace {

// Derive the issues, count them, end the run and write the run record.
ScanSummary finish_scan(store::Db& db, const ScanOptions& options, Reporter& rep, int threads,
                        const std::string& started, Clock::time_point t0, RunState& run_state,
                        const embed::ModelSpec* model, ScanSummary* out) {
    ScanSummary& summary = *out;
    auto t3 = Clock::now();
    derive_issues(db, options, threads, rep, &summary.timings, &summary.index);
    summary.timings["issues"] = seconds_since(t3);

    auto t7 = Clock::now();
    for (const auto& type : issue_types()) summary.issue_counts[type] = 0;
    {
        store::Stmt s(db.handle(), "SELECT type, count(*) FROM issues GROUP BY type");
        while (s.step()) summary.issue_counts[s.text(0)] = uint64_t(s.int64(1));
        store::Stmt c(db.handle(), "SELECT count(*) FROM images");
        c.step();
        summary.images = uint64_t(c.int64(0));
    }
    summary.timings["counts"] = seconds_since(t7);
    // The checksum of the committed rows, on read connections in parallel, stored with the run
    // state: a crash before this commit leaves a run that is "running", which the next scan
    // resumes (nothing is analysed again).
    auto t4 = Clock::now();
    const std::string checksum = store::committed_checksum(summary.db_path, threads);
    db.exec("BEGIN");
    db.set_meta("checksum", checksum);
    run_state.end("complete");
    db.exec("COMMIT");
    summary.timings["checksum"] = seconds_since(t4);
    // One file again (no -wal / -shm), so a copy or a read-only mount of the work dir reads.
    auto t6 = Clock::now();
    db.leave_wal();
    summary.timings["wal_checkpoint"] = seconds_since(t6);
    summary.timings["total"] = seconds_since(t0);
    summary.warnings = rep.warnings();
    store::note_verified(options.work_dir);
    write_run_json(options, summary, threads, "complete", started, model);
    store::remove_tmp_files(options.work_dir);
    return summary;
}

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
    const bool names_only = embeddings_only(options); // items are names, not files
    pipeline::ItemPlan items;
    if (!names_only) {
        io::Annotations annotations = pipeline::read_annotations(lo, options.inputs);
        io::Discovery found = io::discover(options.inputs.empty() ? pipeline::inputs_from_labels(lo, annotations)
                                                                  : options.inputs,
                                           options.work_dir, threads);
        summary.skipped_files = found.skipped_files;
        for (const auto& w : found.warnings) rep.log("warning", w);
        if (found.skipped_files > 0) {
            std::string msg = "skipped " + std::to_string(found.skipped_files) +
                              " file(s) without an image extension, e.g. " + found.skipped_examples[0];
            rep.log("info", msg);
        }
        items = pipeline::build_items(lo, std::move(found), std::move(annotations));
        for (const auto& w : items.warnings) rep.log("warning", w);
        summary.labelled = items.labelled;
        summary.missing_label_files = items.missing_label_files;
        summary.skipped_boxes = items.skipped_boxes;
    }
    summary.timings["discover"] = seconds_since(t0);
    check_work_dir(options);
    if (!lock) lock = std::make_unique<store::WorkDirLock>(options.work_dir);
    store::remove_tmp_files(options.work_dir);
    if (options.rebuild) store::remove_results(options.work_dir);

    std::unique_ptr<embed::ModelSpec> model;
    if (options.model.model != "none" && options.embeddings.empty())
        model = std::make_unique<embed::ModelSpec>(embed::resolve_model(options.model));

    summary.db_path = (fs::path(options.work_dir) / store::kDbName).string();
    const bool verified = store::verified_unchanged(options.work_dir);
    store::Db db(summary.db_path, false, !verified);
    // Damaged rows would be reused as if they were analysis results: refuse, and name the fix
    // (unless this state of the file was verified whole before: vislint.verified).
    const std::string stored = db.meta("checksum");
    if (!verified && (!stored.empty() || db.meta("run_state") == "complete") &&
        !store::checksum_matches(db, stored, threads))
        store::throw_damaged(summary.db_path, "its rows do not match the checksum the scan stored");
    RunState run_state(db, rep);
    // Precomputed vectors for images: checked whole before anything is written.
    std::unique_ptr<GivenVectors> given;
    if (!options.embeddings.empty() && !names_only) given = std::make_unique<GivenVectors>(options, rep);
    const std::string signature =
        names_only ? embeddings_signature(options)
                   : analysis_signature(options, model.get()) + (given ? "; vectors " + given->identity() : "");
    const std::string features_path = (fs::path(options.work_dir) / store::kFeaturesName).string();
    const bool reuse = db.meta("analysis_signature") == signature &&
                       ((!model && !given) || store::feature_file_shape(features_path).second > 0);
    if (names_only) {
        auto t1 = Clock::now();
        db.exec("BEGIN");
        db.set_meta("run_state", "running");
        db.exec("DELETE FROM meta WHERE key = 'checksum'");
        db.set_meta("model", "embeddings");
        db.set_meta("model_options", nlohmann::json{{"model", "embeddings"}}.dump());
        db.exec("COMMIT");
        summary.analysed = import_embeddings(db, options, reuse, rep, &summary.removed);
        db.set_meta("analysis_signature", signature); // last: the import is complete
        summary.labelled = write_name_labels(db, options, rep);
        store::Stmt c(db.handle(), "SELECT count(*) FROM images");
        c.step();
        summary.reused = uint64_t(c.int64(0)) - summary.analysed; // an update keeps the rows it did not change
        summary.timings["import"] = seconds_since(t1);
        return finish_scan(db, options, rep, threads, started, t0, run_state, nullptr, &summary);
    }

    auto t1 = Clock::now();
    Planned planned = plan(db, items.items, reuse, model || given ? features_path : "", rep);
    summary.reused = planned.reused;
    summary.removed = planned.removed_ids.size();
    db.exec("BEGIN");
    db.set_meta("run_state", "running");
    db.exec("DELETE FROM meta WHERE key = 'checksum'");
    // Rows of another analysis must never pass for this one's if this scan is cut short (the
    // features file is reset below): mark them changed so that a resumed scan re-analyses them.
    if (!reuse) db.exec("UPDATE images SET mtime_ns = -1, has_embedding = 0, derived = NULL");
    db.set_meta("analysis_signature", signature);
    db.set_meta("model", model ? model->id : given ? "embeddings" : "none");
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
    if (!model && !given) { // hash-only: no stale embeddings or index of another run
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
        } else if (given) {
            features = std::make_unique<store::FeatureFile>(features_path, given->dim(), !reuse);
            for (int64_t id : planned.removed_ids) features->zero_row(id);
            features->sync();
            ctx.features = features.get();
            ctx.given = given.get();
        }
        if (!planned.removed_ids.empty()) {
            db.exec("BEGIN");
            store::Stmt del(db.handle(), "DELETE FROM images WHERE id = ?");
            store::SmallThumbWriter thumbs(db);
            for (int64_t id : planned.removed_ids) {
                del.bind(1, id).run();
                thumbs.remove(id);
            }
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

    auto t5 = Clock::now();
    write_labels(db, items.items);
    summary.timings["labels"] = seconds_since(t5);
    std::vector<pipeline::Item>().swap(items.items);
    return finish_scan(db, options, rep, threads, started, t0, run_state, model.get(), &summary);
}


} // namespace vislint
