// Scan step 4: the run record (run.json) and the work dir's run_state.
#include <fstream>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "common/clock.h"
#include "common/fault.h"
#include "common/text.h"
#include "pipeline/scan_steps.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::pipeline {

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
                    {"embeddings", o.embeddings},
                    {"names", o.names},
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
                      {"small_copy", t.small_copy},
                      {"copy_candidate", t.copy_candidate},
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

RunState::~RunState() {
    if (ended_) return;
    try { // best effort: with a full disk this fails and "running" stays, which also warns
        if (sqlite3_get_autocommit(db_.handle()) == 0) db_.exec("ROLLBACK"); // cut short mid-transaction
        db_.set_meta("run_state", rep_.cancel_requested() ? "cancelled" : "failed");
    } catch (...) {
    }
}

void RunState::end(const char* state) {
    db_.set_meta("run_state", state);
    ended_ = true;
}

} // namespace vislint::pipeline
