#include "vislint/results.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "hash/hashes.h"
#include "store/db.h"
#include "store/work_dir.h"
#include "vislint/issue.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint {
namespace {

std::string format_real(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
}

} // namespace

std::string work_dir_warning(const std::string& work_dir) {
    std::string warning;
    store::open_results(work_dir, &warning);
    return warning;
}

std::vector<IssueRow> read_issues(const std::string& work_dir, const std::string& type) {
    if (!type.empty() && !is_issue_type(type)) {
        std::string known;
        for (const auto& t : issue_types()) known += (known.empty() ? "" : ", ") + t;
        throw Error("unknown issue type '" + type + "'; known types: " + known);
    }
    std::unique_ptr<store::Db> opened = store::open_results(work_dir);
    store::Db& db = *opened;
    std::string sql =
        "SELECT i.type, a.path, b.path, i.score, i.threshold, i.detail FROM issues i "
        "JOIN images a ON a.id = i.image_id LEFT JOIN images b ON b.id = i.other_id";
    if (!type.empty()) sql += " WHERE i.type = ?";
    sql += " ORDER BY i.type, i.score DESC, a.path, b.path";
    store::Stmt s(db.handle(), sql);
    if (!type.empty()) s.bind(1, type);
    std::vector<IssueRow> out;
    while (s.step()) {
        IssueRow r;
        r.type = s.text(0);
        r.path = s.text(1);
        r.other_path = s.text(2);
        r.score = s.real(3);
        r.threshold = s.is_null(4) ? 0.0 : s.real(4);
        r.detail = s.text(5);
        out.push_back(std::move(r));
    }
    return out;
}

Table read_stats(const std::string& work_dir) {
    std::unique_ptr<store::Db> opened = store::open_results(work_dir);
    store::Db& db = *opened;
    store::Stmt s(db.handle(),
                  "SELECT path, status, format, width, height, channels, bit_depth, file_size, "
                  "brightness, brightness_p01, brightness_p99, contrast, blur, entropy, saturation, is_grayscale, file_hash, "
                  "phash, dhash, error FROM images ORDER BY id");
    Table t;
    for (int c = 0; c < s.columns(); ++c) {
        t.columns.push_back(s.column_name(c));
        const std::string type = s.declared_type(c);
        const bool hex = t.columns[c] == "phash" || t.columns[c] == "dhash";
        t.types.push_back(hex ? ColumnType::kText
                          : type == "INTEGER" ? ColumnType::kInteger
                          : type == "REAL"    ? ColumnType::kReal
                                              : ColumnType::kText);
    }
    while (s.step()) {
        std::vector<std::string> row;
        for (int c = 0; c < s.columns(); ++c) {
            if (s.is_null(c)) {
                row.emplace_back();
            } else if (t.columns[c] == "phash" || t.columns[c] == "dhash") {
                row.push_back(hash::hex64(uint64_t(s.int64(c))));
            } else if (s.is_real(c)) {
                row.push_back(format_real(s.real(c)));
            } else {
                row.push_back(s.text(c));
            }
        }
        t.rows.push_back(std::move(row));
    }
    return t;
}

Table read_classes(const std::string& work_dir) {
    std::unique_ptr<store::Db> opened = store::open_results(work_dir);
    store::Db& db = *opened;
    std::map<std::string, int64_t> count;
    std::map<std::string, std::map<std::string, int64_t>> per;
    std::set<std::string> types;
    {
        store::Stmt s(db.handle(), "SELECT label, count(*) FROM labels WHERE label IS NOT NULL GROUP BY label");
        while (s.step()) count[s.text(0)] = s.int64(1);
        store::Stmt t(db.handle(), "SELECT l.label, s.type, count(DISTINCT s.image_id) FROM issues s "
                                   "JOIN labels l ON l.image_id = s.image_id WHERE l.label IS NOT NULL "
                                   "GROUP BY l.label, s.type");
        while (t.step()) {
            per[t.text(0)][t.text(1)] = t.int64(2);
            types.insert(t.text(1));
        }
    }
    Table out;
    out.columns = {"label", "count"};
    for (const auto& type : issue_types())
        if (types.count(type)) out.columns.push_back(type);
    out.types.assign(out.columns.size(), ColumnType::kInteger);
    out.types[0] = ColumnType::kText;
    std::vector<std::pair<std::string, int64_t>> order(count.begin(), count.end());
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const auto& [label, n] : order) {
        std::vector<std::string> row = {label, std::to_string(n)};
        for (size_t c = 2; c < out.columns.size(); ++c) {
            auto it = per[label].find(out.columns[c]);
            row.push_back(std::to_string(it == per[label].end() ? 0 : it->second));
        }
        out.rows.push_back(std::move(row));
    }
    return out;
}

Table read_confusions(const std::string& work_dir) {
    std::unique_ptr<store::Db> opened = store::open_results(work_dir);
    store::Db& db = *opened;
    store::Stmt s(db.handle(), "SELECT l.label, s.detail, count(*) AS n FROM issues s "
                               "JOIN labels l ON l.image_id = s.image_id WHERE s.type = 'label_issue' "
                               "GROUP BY l.label, s.detail ORDER BY n DESC, l.label, s.detail");
    Table out;
    out.columns = {"given", "suggested", "count"};
    out.types = {ColumnType::kText, ColumnType::kText, ColumnType::kInteger};
    while (s.step()) out.rows.push_back({s.text(0), s.text(1), std::to_string(s.int64(2))});
    return out;
}

} // namespace vislint
