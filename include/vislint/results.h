// Reading a work dir written by scan(). Safe to call from several threads (each call opens its
// own read-only SQLite connection).
#pragma once

#include <string>
#include <vector>

namespace vislint {

struct IssueRow {
    std::string type;
    std::string path;
    std::string other_path; // empty for single-image issues
    double score = 0;       // higher = stronger evidence
    double threshold = 0;
    std::string detail;
};

// All issue rows, optionally of one type (throws vislint::Error for an unknown type or a
// directory that is not a vislint work dir). Ordered by type, then score descending, then path.
std::vector<IssueRow> read_issues(const std::string& work_dir, const std::string& type = "");

// A table of strings: the per-image statistics, one row per image, columns named in `columns`.
struct Table {
    std::vector<std::string> columns;
    std::vector<std::vector<std::string>> rows;
};
Table read_stats(const std::string& work_dir);

} // namespace vislint
