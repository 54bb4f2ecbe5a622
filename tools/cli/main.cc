// vislint command line: parse -> call the library -> print. No analysis happens here.
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "progress_bar.h"
#include "vislint/issue.h"
#include "vislint/report.h"
#include "vislint/results.h"
#include "vislint/scan.h"

namespace {

// Names are printed with printable() (odd bytes as \xNN) in every format.
std::string csv_field(const std::string& raw) {
    const std::string s = vislint::printable(raw);
    bool quote = s.find_first_of(",\"\n\r") != std::string::npos ||
                 (!s.empty() && (s.front() == ' ' || s.back() == ' '));
    if (!quote) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
}

void print_table(const std::vector<std::string>& head, std::vector<std::vector<std::string>> rows) {
    for (auto& r : rows)
        for (auto& cell : r) cell = vislint::printable(cell);
    std::vector<size_t> w(head.size());
    for (size_t c = 0; c < head.size(); ++c) w[c] = head[c].size();
    for (const auto& r : rows)
        for (size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], r[c].size());
    auto line = [&](const std::vector<std::string>& r) {
        std::string s;
        for (size_t c = 0; c < r.size(); ++c) {
            std::string cell = r[c];
            if (c + 1 < r.size()) cell.resize(w[c], ' ');
            s += cell + (c + 1 < r.size() ? "  " : "");
        }
        std::cout << s << "\n";
    };
    line(head);
    for (const auto& r : rows) line(r);
}

// Runs a long library call with a progress bar on stderr (rate and ETA; none with --quiet).
// Ctrl-C cancels it cleanly: returns false after telling the user what was kept.
template <typename Call>
bool with_progress(bool quiet, Call&& call) {
    vislint::cli::install_interrupt_handler();
    vislint::cli::ProgressBar bar(!quiet && ::isatty(STDERR_FILENO), !quiet);
    try {
        call(&bar);
    } catch (const vislint::Cancelled& e) {
        bar.finish();
        std::cerr << "vislint: " << e.what() << "\n";
        return false;
    }
    bar.finish();
    return true;
}

// Results of a scan that did not finish are shown, but never as if they were complete.
void warn_if_incomplete(const std::string& work_dir) {
    std::string w = vislint::work_dir_warning(work_dir);
    if (!w.empty()) std::cerr << "vislint: warning: " << w << "\n";
}

// Writes the report; with `open`, hands it to the desktop's opener when there is one.
int cmd_report(const std::string& work_dir, const vislint::ReportOptions& ro, bool open, bool quiet) {
    vislint::check_report_options(ro);
    warn_if_incomplete(work_dir);
    std::string page;
    if (!with_progress(quiet, [&](vislint::Progress* p) { page = vislint::write_report(work_dir, ro, p); }))
        return vislint::cli::interrupt_exit_code();
    std::cout << "report: " << vislint::printable(page) << "\n";
    if (open) {
        std::string cmd = "xdg-open '" + page + "' >/dev/null 2>&1 &";
        if (page.find('\'') != std::string::npos || std::system("command -v xdg-open >/dev/null 2>&1") != 0 ||
            std::system(cmd.c_str()) != 0)
            std::cout << "(no desktop opener found: open the file above in a browser)\n";
    }
    return 0;
}

int cmd_scan(vislint::ScanOptions opt, const vislint::ReportOptions& ro, bool quiet, bool report) {
    if (report) vislint::check_report_options(ro); // before the scan, not after it
    vislint::ScanSummary s;
    if (!with_progress(quiet, [&](vislint::Progress* p) { s = vislint::scan(opt, p); }))
        return vislint::cli::interrupt_exit_code();
    double secs = s.timings["total"];
    std::cout << "vislint " << vislint::version() << ": " << s.images << " images (" << s.analysed
              << " analysed, " << s.reused << " unchanged and reused";
    if (s.removed) std::cout << ", " << s.removed << " removed";
    std::cout << ") in " << num(secs) << " s";
    if (s.analysed && s.timings["analyse"] > 0)
        std::cout << ", " << num(s.analysed / s.timings["analyse"]) << " img/s";
    std::cout << "\n";
    if (s.skipped_files)
        std::cout << s.skipped_files << " file(s) without an image extension were not scanned\n";
    if (s.labelled) std::cout << s.labelled << " labelled item(s)\n";
    if (s.missing_label_files)
        std::cout << s.missing_label_files << " label row(s) name files that do not exist (not fatal)\n";
    if (s.skipped_boxes) std::cout << s.skipped_boxes << " box(es) too small or outside their image were skipped\n";
    std::cout << "\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : vislint::issue_types())
        rows.push_back({t, std::to_string(s.issue_counts[t])});
    print_table({"issue type", "count"}, rows);
    if (report) {
        int rc = cmd_report(opt.work_dir, ro, false, quiet);
        if (rc != 0) return rc;
    }
    std::cout << "\nresults: " << vislint::printable(s.db_path) << "\n"
              << "details: vislint issues " << vislint::printable(opt.work_dir) << " [--type TYPE] [--format csv]\n";
    return 0;
}

int cmd_issues(const std::string& work_dir, const std::string& type, const std::string& format) {
    warn_if_incomplete(work_dir);
    auto rows = vislint::read_issues(work_dir, type);
    if (format == "csv") {
        std::cout << "type,path,other_path,score,threshold,detail\n";
        for (const auto& r : rows)
            std::cout << r.type << "," << csv_field(r.path) << "," << csv_field(r.other_path) << ","
                      << num(r.score) << "," << num(r.threshold) << "," << csv_field(r.detail) << "\n";
    } else if (format == "json") {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& r : rows)
            j.push_back({{"type", r.type}, {"path", r.path}, {"other_path", r.other_path},
                         {"score", r.score}, {"threshold", r.threshold}, {"detail", r.detail}});
        std::cout << vislint::dump_printable(j, 2) << "\n";
    } else {
        std::vector<std::vector<std::string>> t;
        for (const auto& r : rows) t.push_back({r.type, num(r.score), r.path, r.other_path, r.detail});
        print_table({"type", "score", "path", "other_path", "detail"}, t);
        std::cout << rows.size() << " issue row(s)\n";
    }
    return 0;
}

// A Table cell as JSON: no value -> null, numbers as numbers, text as text.
nlohmann::json json_cell(const std::string& cell, vislint::ColumnType type) {
    if (cell.empty()) return nullptr;
    if (type == vislint::ColumnType::kInteger) return std::stoll(cell);
    if (type == vislint::ColumnType::kReal) return std::stod(cell);
    return cell;
}

void print_rows(const vislint::Table& t, const std::string& format) {
    if (format == "csv") {
        for (size_t c = 0; c < t.columns.size(); ++c) std::cout << (c ? "," : "") << t.columns[c];
        std::cout << "\n";
        for (const auto& row : t.rows) {
            for (size_t c = 0; c < row.size(); ++c) std::cout << (c ? "," : "") << csv_field(row[c]);
            std::cout << "\n";
        }
    } else if (format == "json") {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& row : t.rows) {
            nlohmann::json o = nlohmann::json::object();
            for (size_t c = 0; c < t.columns.size(); ++c) o[t.columns[c]] = json_cell(row[c], t.types[c]);
            j.push_back(o);
        }
        std::cout << vislint::dump_printable(j, 2) << "\n";
    } else {
        print_table(t.columns, t.rows);
    }
}

int cmd_stats(const std::string& work_dir, const std::string& format) {
    warn_if_incomplete(work_dir);
    print_rows(vislint::read_stats(work_dir), format);
    return 0;
}

int cmd_classes(const std::string& work_dir, const std::string& format) {
    warn_if_incomplete(work_dir);
    vislint::Table classes = vislint::read_classes(work_dir);
    if (classes.rows.empty()) {
        std::cerr << "vislint: no labels in " << work_dir << " (scan with --labels, --coco or --yolo)\n";
        return 1;
    }
    if (format == "json") {
        std::cout << "{\"classes\": ";
        print_rows(classes, format);
        std::cout << ", \"confused\": ";
        print_rows(vislint::read_confusions(work_dir), format);
        std::cout << "}\n";
        return 0;
    }
    print_rows(classes, format);
    vislint::Table confused = vislint::read_confusions(work_dir);
    if (format == "table" && !confused.rows.empty()) {
        std::cout << "\nmost confused (label_issue: given -> suggested)\n";
        if (confused.rows.size() > 20) confused.rows.resize(20);
        print_rows(confused, format);
    }
    return 0;
}

int cmd_similar(const std::string& work_dir, const std::string& image, int k, const std::string& format) {
    warn_if_incomplete(work_dir);
    auto hits = vislint::similar(work_dir, image, k);
    if (format == "csv") {
        std::cout << "rank,path,score\n";
        for (size_t i = 0; i < hits.size(); ++i)
            std::cout << i + 1 << "," << csv_field(hits[i].path) << "," << num(hits[i].score) << "\n";
    } else if (format == "json") {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& h : hits) j.push_back({{"path", h.path}, {"score", h.score}});
        std::cout << vislint::dump_printable(j, 2) << "\n";
    } else {
        std::vector<std::vector<std::string>> rows;
        for (size_t i = 0; i < hits.size(); ++i) rows.push_back({std::to_string(i + 1), num(hits[i].score), hits[i].path});
        print_table({"rank", "score", "path"}, rows);
    }
    return 0;
}

// Precision / recall / F1 per type against TRUTH.csv (relative names resolve against its folder).
int cmd_eval(const std::string& work_dir, const std::string& truth_csv, const std::string& format) {
    warn_if_incomplete(work_dir);
    std::vector<std::string> warnings;
    const auto scores = vislint::evaluate_csv(work_dir, truth_csv, &warnings);
    for (const auto& w : warnings) std::cerr << "vislint: warning: " << vislint::printable(w) << "\n";
    if (format == "json") {
        nlohmann::json j = nlohmann::json::object();
        for (const auto& [type, s] : scores)
            j[type] = {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1},
                       {"predicted", s.predicted}, {"true", s.truth}};
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    auto fixed = [](double v) {
        char buf[16];
        std::snprintf(buf, sizeof(buf), "%.3f", v);
        return std::string(buf);
    };
    std::vector<std::vector<std::string>> rows;
    for (const auto& [type, s] : scores)
        rows.push_back({type, fixed(s.precision), fixed(s.recall), fixed(s.f1), std::to_string(s.predicted),
                        std::to_string(s.truth), std::to_string(s.matched)});
    print_table({"type", "precision", "recall", "f1", "predicted", "true", "matched"}, rows);
    if (scores.count("duplicate"))
        std::cout << "(duplicate, exact_duplicate: pairs of images in one group, after closing exact and near "
                     "pairs transitively on both sides)\n";
    return 0;
}

// --max-pixels as a whole number, also written 1e8 or 2.5e7. CLI11 refuses "1e8" for an integer
// and saturates "99999999999999999999" silently, so the text is read here and checked against
// the same range as the library's own check.
int64_t parse_max_pixels(const std::string& text) {
    const std::string msg = "--max-pixels must be a whole number of pixels between 1 and " +
                            std::to_string(vislint::kMaxPixelsLimit) + " (got " + text + ")";
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE ||
        text.find_first_of("xXnN") != std::string::npos || !(v >= 1) || v > double(vislint::kMaxPixelsLimit) ||
        v != std::floor(v))
        throw vislint::Error(msg);
    return int64_t(v);
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"vislint: lint image datasets for broken files, duplicates and quality issues"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("vislint ") + vislint::version());

    vislint::ScanOptions opt;
    vislint::Thresholds& t = opt.thresholds;
    bool quiet = false;
    CLI::App* scan = app.add_subcommand("scan", "scan folders / images / list files into a work dir");
    scan->add_option("inputs", opt.inputs, "folders (recursive), image files, or .txt lists of paths (optional with --labels CSV, --coco or --yolo)");
    scan->add_option("-o,--output", opt.work_dir, "work dir for results (created; never inside an input)")->required();
    scan->add_option("--model", opt.model.model, "embedding model: 'default' (EfficientNet-Lite0), 'none' (hash-only), PATH.onnx or an OpenVINO PATH.xml")->capture_default_str();
    scan->add_option("--model-size", opt.model.input_size, "model input side in px (0 = the model's default)");
    scan->add_option("--model-mean", opt.model.mean, "per-channel RGB mean in pixel units (1 or 3 numbers)")->delimiter(',');
    scan->add_option("--model-std", opt.model.std, "per-channel RGB std in pixel units (1 or 3 numbers)")->delimiter(',');
    scan->add_option("--model-output", opt.model.output, "output layer whose values are the embedding");
    scan->add_option("--batch-size", opt.model.batch_size, "images per inference batch")->capture_default_str();
    scan->add_option("--precision", opt.model.precision, "inference precision: auto (bf16 where the CPU has it, else f32), f32, bf16 or int8")->capture_default_str();
    scan->add_option("-k", opt.k, "neighbours per image in the kNN graph")->capture_default_str();
    scan->add_option("--embeddings", opt.embeddings, "vectors instead of a model: an .npy (n x d, float16/float32), row i = item i; with --names and no inputs, items are names (embeddings-only)");
    scan->add_option("--names", opt.names, "embeddings-only: a text file, line i = the name of row i (any string: path, URL or id; never opened)");
    scan->add_option("--index-dim", opt.index_dim, "kNN index dimension: -1 = PCA to 256 above 8,192 images, 0 = never reduce, N = PCA to N (similarities stay exact)")->capture_default_str();
    scan->add_option("--near-duplicate-threshold", t.near_duplicate, "near_duplicate when cosine similarity >= (with a model)")->capture_default_str();
    scan->add_option("--cluster-threshold", t.cluster, "clusters join images with cosine similarity >= (with a model)")->capture_default_str();
    scan->add_option("--outlier-z", t.outlier_z, "outlier when the robust z-score of isolation is above")->capture_default_str();
    scan->add_option("--threads", opt.threads, "worker threads (0 = all cores)")->capture_default_str();
    std::string max_pixels = std::to_string(opt.max_pixels);
    scan->add_option("--max-pixels", max_pixels, "refuse images with more pixels (decompression bombs); 1e8 style accepted")->capture_default_str();
    scan->add_option("--max-image-memory", opt.max_image_memory_mb, "refuse a file larger than this many MiB, or whose decode would allocate more")->capture_default_str();
    scan->add_option("--blurry-threshold", t.blurry, "blurry when relative sharpness (Laplacian variance / grey variance) is below")->capture_default_str();
    scan->add_option("--dark-threshold", t.dark, "dark when the 99th-percentile grey level (0-255) is below")->capture_default_str();
    scan->add_option("--bright-threshold", t.bright, "bright when the 1st-percentile grey level (0-255) is above")->capture_default_str();
    scan->add_option("--low-information-threshold", t.low_information, "low_information when entropy (bits) is below")->capture_default_str();
    scan->add_option("--grayscale-threshold", t.grayscale_colour_fraction, "grayscale when the share of colourful pixels is below")->capture_default_str();
    scan->add_option("--aspect-ratio-threshold", t.odd_aspect_ratio, "odd_aspect_ratio when max(w/h, h/w) is above")->capture_default_str();
    scan->add_option("--odd-size-ratio", t.odd_size_ratio, "odd_size when sqrt(area) differs from the median by more than this factor")->capture_default_str();
    scan->add_option("--min-side", t.odd_size_min_side, "odd_size when the shorter side is below (px)")->capture_default_str();
    scan->add_option("--hash-radius", t.hash_radius, "near_duplicate pHash Hamming radius (model none)")->capture_default_str();
    scan->add_option("--dhash-radius", t.dhash_radius, "near_duplicate also needs dHash within this radius")->capture_default_str();
    scan->add_option("--small-copy-threshold", t.small_copy,
                     "near_duplicate of two images of at most 64 px also needs this pixel correlation (0 = off)")->capture_default_str();
    scan->add_option("--copy-candidate-threshold", t.copy_candidate,
                     "kNN edges from this similarity up are near_duplicate when a copy check (pixels of small images, "
                     "hashes of mirrored / cropped / rotated views) confirms them")->capture_default_str();
    std::string splits = "auto";
    vislint::LabelOptions& lo = opt.labels;
    scan->add_option("--labels", lo.labels, "labels: 'folder' (parent folder name) or a CSV with path,label[,split] columns");
    scan->add_option("--coco", lo.coco, "COCO JSON: image labels from its boxes (and boxes for --objects)");
    scan->add_option("--yolo", lo.yolo, "YOLO dataset folder (images/, labels/, data.yaml or classes.txt)");
    scan->add_flag("--objects", lo.objects, "analyse every COCO / YOLO box as an item of its own (image.jpg#box_id)");
    scan->add_option("--min-box-side", lo.min_box_side, "--objects: skip boxes with a side below this (px)")->capture_default_str();
    scan->add_option("--box-margin", lo.box_margin, "--objects: crop margin as a fraction of the box side")->capture_default_str();
    scan->add_option("--splits", splits, "auto: splits from train/val/test folder names; none: off (a CSV split column always counts)")
        ->check(CLI::IsMember({"auto", "none"}))->capture_default_str();
    scan->add_option("--label-issue-threshold", t.label_issue, "label_issue when the kNN vote's confidence that the label is wrong is at least")->capture_default_str();
    bool no_report = false, open_report = false;
    vislint::ReportOptions report_options;
    scan->add_flag("--no-report", no_report, "do not write WORK_DIR/report/index.html");
    const char* kMaxRowsHelp = "the report shows at most this many rows of each issue type (the strongest) and "
                               "this many duplicate groups, with the true totals; every row stays in the work dir";
    scan->add_option("--max-rows-per-type", report_options.max_rows_per_type, kMaxRowsHelp)->capture_default_str();
    scan->add_flag("-q,--quiet", quiet, "no progress bar");
    scan->add_flag("--rebuild", opt.rebuild, "discard the work dir's database, features and index and analyse everything again (the fix for a damaged work dir)");

    std::string work_dir, type, format = "table", stats_format = "csv";
    CLI::App* issues = app.add_subcommand("issues", "list the issues found by a scan");
    issues->add_option("work_dir", work_dir, "work dir of a scan")->required();
    issues->add_option("--type", type, "only this issue type");
    issues->add_option("--format", format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));

    std::string query;
    int top_k = 10;
    std::string similar_format = "table";
    CLI::App* similar = app.add_subcommand("similar", "the dataset images most similar to an image");
    similar->add_option("work_dir", work_dir, "work dir of a scan made with a model")->required();
    similar->add_option("image", query, "an image file, inside or outside the dataset")->required();
    similar->add_option("-k", top_k, "how many results")->capture_default_str();
    similar->add_option("--format", similar_format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));

    CLI::App* report = app.add_subcommand("report", "write the HTML report of a scan (WORK_DIR/report/index.html)");
    report->add_option("work_dir", work_dir, "work dir of a scan")->required();
    report->add_flag("--open", open_report, "open it in the desktop's browser");
    report->add_option("--max-rows-per-type", report_options.max_rows_per_type, kMaxRowsHelp)->capture_default_str();
    report->add_flag("-q,--quiet", quiet, "no progress bar");

    std::string classes_format = "table";
    CLI::App* classes = app.add_subcommand("classes", "per-class summary of a labelled scan: counts, issues, confusions");
    classes->add_option("work_dir", work_dir, "work dir of a scan with labels")->required();
    classes->add_option("--format", classes_format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));

    CLI::App* stats = app.add_subcommand("stats", "per-image statistics of a scan");
    stats->add_option("work_dir", work_dir, "work dir of a scan")->required();
    stats->add_option("--format", stats_format, "csv or json")->check(CLI::IsMember({"csv", "json"}));

    std::string truth_csv, eval_format = "table";
    CLI::App* eval = app.add_subcommand("eval", "precision, recall and F1 per issue type against a ground truth");
    eval->add_option("work_dir", work_dir, "work dir of a scan")->required();
    eval->add_option("truth", truth_csv, "CSV with columns type,path,other_path (other_path empty for single-image types)")->required();
    eval->add_option("--format", eval_format, "table or json")->check(CLI::IsMember({"table", "json"}));

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "vislint: error: " << e.what() << "\n";
        return 2;
    }
    try {
        if (*scan) {
            lo.auto_splits = splits == "auto";
            opt.max_pixels = parse_max_pixels(max_pixels);
            return cmd_scan(opt, report_options, quiet, !no_report);
        }
        if (*issues) return cmd_issues(work_dir, type, format);
        if (*stats) return cmd_stats(work_dir, stats_format);
        if (*report) return cmd_report(work_dir, report_options, open_report, quiet);
        if (*classes) return cmd_classes(work_dir, classes_format);
        if (*similar) return cmd_similar(work_dir, query, top_k, similar_format);
        if (*eval) return cmd_eval(work_dir, truth_csv, eval_format);
    } catch (const vislint::Error& e) {
        std::cerr << "vislint: error: " << vislint::printable(e.what()) << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "vislint: internal error: " << vislint::printable(e.what()) << "\n";
        return 3;
    }
    return 0;
}
