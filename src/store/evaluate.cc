// vislint eval: the work dir's issue rows against a user's ground truth (scoring rules in
// graph/evaluate.h).
#include <filesystem>
#include <unordered_set>

#include "graph/evaluate.h"
#include "io/csv.h"
#include "io/discover.h"
#include "store/db.h"
#include "store/work_dir.h"
#include "vislint/issue.h"
#include "vislint/results.h"
#include "vislint/status.h"

namespace vislint {
namespace {

bool is_pair_type(const std::string& type) {
    return type == "exact_duplicate" || type == "near_duplicate" || type == "leak";
}

// Throws vislint::Error "WHERE: ..." for an unknown type, an empty path or a pair without its
// other image: the checks of a CSV row and of an in-memory one.
void check_truth_row(const TruthRow& row, const std::string& where) {
    if (!is_issue_type(row.type)) {
        std::string known;
        for (const auto& t : issue_types()) known += (known.empty() ? "" : ", ") + t;
        throw Error(where + ": unknown issue type '" + row.type + "'; known types: " + known);
    }
    if (io::trim(row.path).empty()) throw Error(where + ": empty path");
    if (is_pair_type(row.type) && io::trim(row.other_path).empty())
        throw Error(where + ": a " + row.type + " row needs other_path (the other image of the pair)");
}

} // namespace

std::vector<TruthRow> read_truth_csv(const std::string& csv_path) {
    const std::vector<io::CsvRecord> recs = io::parse_csv(io::read_text(csv_path, "ground truth file"), csv_path);
    if (recs.empty()) throw Error(csv_path + ": empty ground truth file (expected a header with type,path,other_path)");
    int col_type = -1, col_path = -1, col_other = -1;
    const auto& head = recs[0].fields;
    for (size_t c = 0; c < head.size(); ++c) {
        const std::string h = io::lower(io::trim(head[c]));
        if (h == "type" && col_type < 0) col_type = int(c);
        else if (h == "path" && col_path < 0) col_path = int(c);
        else if (h == "other_path" && col_other < 0) col_other = int(c);
    }
    if (col_type < 0 || col_path < 0)
        throw Error(csv_path + ":1: the header must name a 'type' and a 'path' column (and 'other_path' for "
                               "pairs); found: " + head[0] + (head.size() > 1 ? ", ..." : ""));
    std::vector<TruthRow> out;
    for (size_t r = 1; r < recs.size(); ++r) {
        const auto& f = recs[r].fields;
        const std::string where = io::record_place(csv_path, recs[r], head.size());
        TruthRow row{io::trim(f[size_t(col_type)]), f[size_t(col_path)], col_other >= 0 ? f[size_t(col_other)] : ""};
        check_truth_row(row, where);
        out.push_back(std::move(row));
    }
    return out;
}

std::map<std::string, TypeScore> evaluate(const std::string& work_dir, const std::vector<TruthRow>& truth,
                                          const std::string& base_dir, std::vector<std::string>* warnings) {
    for (size_t i = 0; i < truth.size(); ++i) check_truth_row(truth[i], "ground truth row " + std::to_string(i + 1));
    std::unique_ptr<store::Db> opened = store::open_results(work_dir);
    store::Db& db = *opened;
    std::unordered_set<std::string> names;
    {
        store::Stmt s(db.handle(), "SELECT path FROM images");
        while (s.step()) names.insert(s.text(0));
    }
    std::vector<graph::Finding> predicted;
    {
        store::Stmt s(db.handle(), "SELECT i.type, a.path, b.path FROM issues i JOIN images a ON a.id = i.image_id "
                                   "LEFT JOIN images b ON b.id = i.other_id");
        while (s.step()) predicted.push_back({s.text(0), s.text(1), s.text(2)});
    }
    uint64_t unknown = 0;
    std::string example;
    auto name_of = [&](const std::string& name) {
        if (names.count(name)) return name;
        const std::string resolved = io::resolve_path(base_dir, name);
        if (names.count(resolved)) return resolved;
        if (unknown++ == 0) example = name;
        return name;
    };
    std::vector<graph::Finding> expected;
    for (const TruthRow& r : truth)
        expected.push_back({r.type, name_of(r.path), is_pair_type(r.type) ? name_of(r.other_path) : ""});
    if (unknown && warnings)
        warnings->push_back(std::to_string(unknown) + " ground-truth name(s) are no item of " + work_dir +
                            " (counted as missed), e.g. " + example);
    return graph::score_findings(predicted, expected);
}

std::map<std::string, TypeScore> evaluate_csv(const std::string& work_dir, const std::string& csv_path,
                                              std::vector<std::string>* warnings) {
    const std::string folder = std::filesystem::path(csv_path).parent_path().string();
    return evaluate(work_dir, read_truth_csv(csv_path), folder.empty() ? "." : folder, warnings);
}

} // namespace vislint
