// The HTML report: read the work dir, make the thumbnails it needs, inject the findings as JSON
// into the template (src/report/report.html, compiled in; its data contract is
// src/report/DATA.md). Rendering happens in the page's own JavaScript.
#include "vislint/report.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/clock.h"
#include "common/text.h"
#include "common/fault.h"
#include "io/decode.h"
#include "store/db.h"
#include "store/overview.h"
#include "store/work_dir.h"
#include "vislint/issue.h"
#include "vislint/status.h"

extern const char* const kReportTemplate;

namespace fs = std::filesystem;
using nlohmann::json;

namespace vislint {
namespace {

constexpr const char* kPlaceholder = "/*VISLINT_DATA*/null";

struct Item {
    std::string path, source, box, status, file_hash, label, split;
    int width = 0, height = 0;
    std::string thumb; // relative to the report folder; "" = none
};

// A thumbnail (longer side `side`, JPEG) of an item; false when the image cannot be read now.
bool make_thumbnail(const Item& it, int side, double box_margin, const std::string& out_path) {
    std::vector<uint8_t> bytes;
    ImageStatus status;
    const std::string& file = it.source.empty() ? it.path : it.source;
    if (!io::read_file(file, io::kDefaultMaxImageBytes, &bytes, &status)) return false;
    io::DecodeOptions dopt;
    dopt.working_side = it.box.empty() ? side : (1 << 30);
    io::DecodedImage image;
    if (!io::decode_image(bytes.data(), bytes.size(), dopt, &image).ok()) return false;
    if (!it.box.empty() && !io::crop_box(image, it.box, box_margin, &image).ok()) return false;
    cv::Mat small = io::working_image(image, side);
    std::vector<uint8_t> jpeg;
    if (!cv::imencode(".jpg", small, jpeg, {cv::IMWRITE_JPEG_QUALITY, 80})) return false;
    std::string tmp = out_path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        fault_point("report");
        out.write(reinterpret_cast<const char*>(jpeg.data()), std::streamsize(jpeg.size()));
        if (!out) return false;
    }
    std::error_code ec;
    fs::rename(tmp, out_path, ec);
    return !ec;
}

// How the report ranks one issue type's rows before it keeps the first max_rows_per_type.
// Parameters: 1 = the type, 2 = the cap. Columns: image_id, other_id, score, threshold, detail.
struct IssueRank {
    std::string sql;
    const char* said; // for the page's note
};

IssueRank issue_rank(const std::string& type) {
    const std::string cols = "SELECT i.image_id, i.other_id, i.score, i.threshold, i.detail FROM issues i ";
    // Every exact copy scores 1: the largest sets of copies (rows sharing a keeper) come first.
    if (type == "exact_duplicate")
        return {cols + "LEFT JOIN (SELECT other_id AS keeper, count(*) AS n FROM issues WHERE type = ?1 "
                       "GROUP BY other_id) g ON g.keeper = i.other_id "
                       "WHERE i.type = ?1 ORDER BY coalesce(g.n, 0) DESC, i.other_id, i.image_id LIMIT ?2",
                "size of the set of copies (rows sharing a keeper), largest first"};
    // Scored 1 each: by path, so one folder's failures sit together.
    if (type == "broken" || type == "wrong_extension")
        return {cols + "LEFT JOIN images a ON a.id = i.image_id WHERE i.type = ?1 ORDER BY a.path, i.id LIMIT ?2",
                "path"};
    // Every other score grows with the strength of the finding (similarity, isolation, vote,
    // distance past a quality threshold: src/quality/flags.cc).
    return {cols + "WHERE i.type = ?1 ORDER BY i.score DESC, i.image_id, i.other_id LIMIT ?2", "score, highest first"};
}

} // namespace

void check_report_options(const ReportOptions& o) {
    auto need = [](bool ok, const std::string& what, int got) {
        if (!ok) throw Error(what + " must be at least 1 (got " + std::to_string(got) + ")");
    };
    need(o.max_rows_per_type >= 1, "--max-rows-per-type", o.max_rows_per_type);
    need(o.max_group_members >= 1, "max_group_members", o.max_group_members);
    need(o.max_cluster_members >= 1, "max_cluster_members", o.max_cluster_members);
    need(o.max_clusters >= 1, "max_clusters", o.max_clusters);
    need(o.thumb_side >= 1, "thumb_side", o.thumb_side);
}

std::string write_report(const std::string& work_dir, const ReportOptions& options, Progress* progress) {
    check_report_options(options);
    std::unique_ptr<store::Db> opened = store::open_results(work_dir);
    store::Db& db = *opened;
    store::WorkDirLock lock(work_dir); // a report is written by one process at a time, never during a scan
    store::remove_tmp_files(work_dir);
    const fs::path report_dir = fs::path(work_dir) / "report";
    const fs::path thumbs_dir = report_dir / "thumbs";
    std::error_code ec;
    fs::create_directories(thumbs_dir, ec);
    if (ec) throw Error("cannot create " + thumbs_dir.string() + ": " + ec.message());
    // The thumbnails made by earlier reports, listed once (not one stat per shown image).
    std::unordered_set<std::string> present;
    for (const auto& e : fs::directory_iterator(thumbs_dir, ec))
        present.insert("thumbs/" + e.path().filename().string());
    // One read transaction for the report's thousands of small queries: one shared lock instead
    // of a lock and an unlock per statement.
    db.exec("BEGIN");

    json run = json::object();
    if (std::ifstream in(fs::path(work_dir) / "run.json"); in) {
        try {
            in >> run;
        } catch (const json::exception&) {
            run = json::object();
        }
    }
    double box_margin = run.value("/options/labels/box_margin"_json_pointer, 0.1);

    // Overview and histograms from the aggregates the scan stored (store/overview.h), splits and
    // labels by aggregate queries: memory stays flat whatever the number of images.
    json stored = store::read_overview(db);
    json overview = {{"images", stored["images"]},
                     {"broken", stored["broken"]},
                     {"formats", stored["formats"]},
                     {"splits", json::object()},
                     {"labels", json::object()}};
    json histograms = stored["histograms"];
    {
        store::Stmt sp(db.handle(), "SELECT split, count(*) FROM labels WHERE split IS NOT NULL GROUP BY split");
        while (sp.step()) overview["splits"][sp.text(0)] = sp.int64(1);
        store::Stmt lb(db.handle(), "SELECT label, count(*) FROM labels WHERE label IS NOT NULL GROUP BY label");
        int64_t labelled = 0;
        while (lb.step()) {
            overview["labels"][lb.text(0)] = lb.int64(1);
            labelled += lb.int64(1);
        }
        overview["labelled"] = labelled;
    }

    // What the page shows, by item index into `shown`.
    std::vector<int64_t> shown;
    std::unordered_map<int64_t, int64_t> index_of;
    auto ref = [&](int64_t id) -> json {
        auto [it, inserted] = index_of.emplace(id, int64_t(shown.size()));
        if (inserted) shown.push_back(id);
        return it->second;
    };

    // Each list keeps its strongest rows up to a cap, picked by SQL (ORDER BY ... LIMIT keeps at
    // most LIMIT rows in SQLite's sorter), so memory follows the caps, never the number of rows.
    // The totals come from aggregates.
    const int64_t cap = options.max_rows_per_type;
    json counts = json::object();
    for (const auto& t : issue_types()) counts[t] = 0;
    {
        store::Stmt s(db.handle(), "SELECT type, count(*) FROM issues GROUP BY type");
        while (s.step()) counts[s.text(0)] = s.int64(1);
    }
    overview["counts"] = counts;
    std::vector<std::string> types = issue_types();
    for (const auto& [t, n] : counts.items())
        if (!is_issue_type(t)) types.push_back(t); // a type this version does not know still shows

    json truncation = {{"max_rows_per_type", options.max_rows_per_type},
                       {"max_group_members", options.max_group_members},
                       {"max_clusters", options.max_clusters},
                       {"max_cluster_members", options.max_cluster_members},
                       {"issues", json::object()}};
    json issues = json::array();
    std::vector<int64_t> shown_outliers, shown_label_issues;
    for (const std::string& type : types) {
        const IssueRank rank = issue_rank(type);
        store::Stmt s(db.handle(), rank.sql);
        s.bind(1, type).bind(2, cap);
        int64_t n = 0;
        while (s.step()) {
            ++n;
            json image = ref(s.int64(0));
            if (type == "outlier") shown_outliers.push_back(s.int64(0));
            if (type == "label_issue") shown_label_issues.push_back(s.int64(0));
            issues.push_back({{"type", type},
                              {"image", image},
                              {"other", s.is_null(1) ? json(nullptr) : ref(s.int64(1))},
                              {"score", s.real(2)},
                              {"threshold", s.is_null(3) ? json(nullptr) : json(s.real(3))},
                              {"detail", s.text(4)}});
        }
        truncation["issues"][type] = {{"shown", n}, {"total", counts[type]}, {"ranked_by", rank.said}};
    }

    json groups = json::array();
    {
        store::Stmt total(db.handle(), "SELECT count(*) FROM (SELECT 1 FROM duplicate_groups GROUP BY group_id)");
        total.step();
        // Largest first; ties in the order the scan wrote them (exact groups before near ones).
        store::Stmt s(db.handle(), "SELECT group_id, min(kind), count(*) AS n FROM duplicate_groups "
                                   "GROUP BY group_id ORDER BY n DESC, group_id LIMIT ?");
        s.bind(1, cap);
        // The keeper first, so a group cut to max_group_members still shows which copy to keep.
        store::Stmt m(db.handle(), "SELECT image_id, is_keeper FROM duplicate_groups WHERE group_id = ? "
                                   "ORDER BY is_keeper DESC, image_id LIMIT ?");
        while (s.step()) {
            json g = {{"kind", s.text(1)}, {"size", s.int64(2)}, {"members", json::array()}, {"keeper", nullptr}};
            m.bind(1, s.int64(0)).bind(2, int64_t(options.max_group_members));
            while (m.step()) {
                json idx = ref(m.int64(0));
                g["members"].push_back(idx);
                if (m.int64(1)) g["keeper"] = idx;
            }
            m.reset();
            groups.push_back(std::move(g));
        }
        truncation["groups"] = {{"shown", groups.size()}, {"total", total.int64(0)}, {"ranked_by", "size, largest first"}};
    }

    json clusters = json::array();
    {
        store::Stmt total(db.handle(), "SELECT count(*) FROM (SELECT 1 FROM clusters GROUP BY cluster_id)");
        total.step();
        // The scan numbers clusters largest first.
        store::Stmt s(db.handle(), "SELECT c.cluster_id, c.image_id, l.label FROM clusters c "
                                   "LEFT JOIN labels l ON l.image_id = c.image_id ORDER BY c.cluster_id, c.image_id");
        int64_t current = -1;
        while (s.step()) {
            if (s.int64(0) != current) {
                current = s.int64(0);
                if (int(clusters.size()) >= options.max_clusters) break;
                clusters.push_back({{"size", 0}, {"members", json::array()}, {"labels", json::object()}});
            }
            json& c = clusters.back();
            c["size"] = c["size"].get<int64_t>() + 1;
            if (int(c["members"].size()) < options.max_cluster_members) c["members"].push_back(ref(s.int64(1)));
            if (!s.is_null(2)) c["labels"][s.text(2)] = c["labels"].value(s.text(2), 0) + 1;
        }
        truncation["clusters"] = {{"shown", clusters.size()}, {"total", total.int64(0)}, {"ranked_by", "size, largest first"}};
    }

    // Voters and nearest neighbours of the rows shown only.
    json label_votes = json::object();
    {
        store::Stmt s(db.handle(), "SELECT neighbour_id FROM label_votes WHERE image_id = ? ORDER BY rank");
        for (int64_t id : shown_label_issues) {
            const std::string key = std::to_string(ref(id).get<int64_t>());
            s.bind(1, id);
            while (s.step()) label_votes[key].push_back(ref(s.int64(0)));
            s.reset();
        }
    }
    json neighbours = json::object();
    {
        store::Stmt s(db.handle(), "SELECT nn_id FROM images WHERE id = ? AND nn_id IS NOT NULL");
        for (int64_t id : shown_outliers) {
            s.bind(1, id);
            if (s.step()) neighbours[std::to_string(ref(id).get<int64_t>())] = json::array({ref(s.int64(0))});
            s.reset();
        }
    }

    // The shown items, by index (one lookup each; the other rows are never read).
    std::vector<Item> items(shown.size());
    {
        store::Stmt s(db.handle(),
                      "SELECT i.path, i.source_path, i.box, i.status, i.file_hash, i.pixel_hash, "
                      "l.label, l.split, i.width, i.height FROM images i "
                      "LEFT JOIN labels l ON l.image_id = i.id WHERE i.id = ?");
        // In id order: neighbouring lookups share their B-tree pages (~100 k at the caps).
        std::vector<size_t> by_id(shown.size());
        for (size_t k = 0; k < by_id.size(); ++k) by_id[k] = k;
        std::sort(by_id.begin(), by_id.end(), [&](size_t a, size_t b) { return shown[a] < shown[b]; });
        for (size_t k : by_id) {
            s.bind(1, shown[k]);
            if (s.step()) {
                Item& it = items[k];
                it.path = s.text(0);
                it.source = s.text(1);
                it.box = s.text(2);
                it.status = s.text(3);
                it.file_hash = it.source.empty() ? s.text(4) : s.text(5);
                it.label = s.text(6);
                it.split = s.text(7);
                it.width = int(s.int64(8));
                it.height = int(s.int64(9));
            }
            s.reset();
        }
    }

    // Thumbnails of the shown items: one per content hash, made once, reused by later reports.
    std::vector<size_t> to_make;
    std::vector<char> made; // per to_make entry: its thumbnail was written
    std::unordered_set<std::string> wanted;
    for (size_t i = 0; i < items.size(); ++i) {
        Item& it = items[i];
        if (it.status != "ok" || it.file_hash.empty()) continue;
        it.thumb = "thumbs/" + it.file_hash + ".jpg";
        if (wanted.insert(it.thumb).second && !present.count(it.thumb)) to_make.push_back(i);
    }
    db.exec("COMMIT");
    {
        const int threads = options.threads > 0 ? options.threads : std::max(1, int(std::thread::hardware_concurrency()));
        std::atomic<size_t> next{0}, done{0};
        std::atomic<bool> stop{false};
        std::vector<std::thread> pool;
        made.assign(to_make.size(), 0);
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&] {
                for (size_t i; !stop && (i = next.fetch_add(1)) < to_make.size(); ++done) {
                    const Item& it = items[to_make[i]];
                    try {
                        make_thumbnail(it, options.thumb_side, box_margin, (report_dir / it.thumb).string());
                        made[i] = 1;
                    } catch (const std::exception&) {
                        // No thumbnail: the page shows a placeholder.
                    }
                }
            });
        bool cancelled = false;
        while (done < to_make.size() && !stop) {
            if (progress && !progress->progress("thumbnails", done, to_make.size())) stop = cancelled = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        for (auto& th : pool) th.join();
        if (cancelled) throw Cancelled("report cancelled while making thumbnails");
        if (progress) progress->progress("thumbnails", to_make.size(), to_make.size());
    }
    // Thumbnails no longer shown are removed (the folder is ours).
    for (const auto& t : present)
        if (!wanted.count(t)) fs::remove(report_dir / t, ec);
    for (size_t i = 0; i < to_make.size(); ++i)
        if (made[i]) present.insert(items[to_make[i]].thumb);

    // One array per image, its fields named once in image_columns: at the cap the page shows
    // ~100 k images, and one JSON object each (seven keys) was most of the page (23 of 25 MB)
    // and of the time to build it.
    const json image_columns = {"path", "thumb", "label", "split", "width", "height", "status"};
    json images = json::array();
    for (const Item& it : items) {
        bool has_thumb = !it.thumb.empty() && present.count(it.thumb);
        images.push_back(json::array({it.path, has_thumb ? json(it.thumb) : json(nullptr),
                                      it.label.empty() ? json(nullptr) : json(it.label),
                                      it.split.empty() ? json(nullptr) : json(it.split), it.width, it.height,
                                      it.status}));
    }

    json data = {{"version", VISLINT_VERSION},     {"generated_at", now_iso8601()},
                 {"work_dir", work_dir},           {"run", run},
                 {"overview", overview},           {"histograms", histograms},
                 {"image_columns", image_columns}, {"images", images},
                 {"issues", issues},
                 {"groups", groups},               {"clusters", clusters},
                 {"label_votes", label_votes},     {"neighbours", neighbours},
                 {"truncation", truncation}};
    // Inside <script>, "</script" would end the element early, and "<!--" changes how it is
    // parsed: '<', '>' and '&' only occur inside JSON strings, so write them as \u escapes.
    // Names (paths, labels, splits) that are not UTF-8 show their odd bytes as \xNN.
    std::string payload = dump_printable(std::move(data));
    std::string safe;
    safe.reserve(payload.size() + 64);
    for (char c : payload) {
        if (c == '<') safe += "\\u003c";
        else if (c == '>') safe += "\\u003e";
        else if (c == '&') safe += "\\u0026";
        else safe += c;
    }
    std::string page = kReportTemplate;
    size_t at = page.find(kPlaceholder);
    if (at == std::string::npos) throw Error("report template has no data placeholder (build error)");
    page.replace(at, std::strlen(kPlaceholder), safe);

    const fs::path out = report_dir / "index.html";
    const fs::path tmp = report_dir / "index.html.tmp";
    {
        std::ofstream f(tmp, std::ios::binary);
        f << page;
        if (!f) throw Error("cannot write " + tmp.string());
    }
    fault_point("report");
    fs::rename(tmp, out, ec);
    if (ec) throw Error("cannot write " + out.string() + ": " + ec.message());
    return out.string();
}

} // namespace vislint
