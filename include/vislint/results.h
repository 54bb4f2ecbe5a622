// Reading a work dir written by scan(). Safe to call from several threads (each call opens its
// own read-only SQLite connection).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vislint {

// Every reader below first verifies the work dir: a damaged vislint.db (SQLite's quick_check,
// or rows that no longer match the checksum a complete scan stored) throws vislint::Error
// naming the file and the fix (delete the work dir or re-scan with --rebuild).
// work_dir_warning() does the same and returns "" when the last scan into the work dir
// completed, else a one-line warning that its results may be partial or stale (a cancelled,
// failed or killed re-scan); readers still return what is there.
std::string work_dir_warning(const std::string& work_dir);

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

// Per class (label): items, then per issue type the items of that class with such an issue
// (only types found in some class), most frequent class first. Empty without labels.
Table read_classes(const std::string& work_dir);

// The class pairs most often confused: given, suggested, label_issue rows; most first.
Table read_confusions(const std::string& work_dir);

struct SimilarHit {
    std::string path;
    double score = 0; // cosine similarity
};

// The k dataset images most similar to `image` (a file inside or outside the dataset; the file
// itself is left out of its own results). Embeds it with the scan's model and searches the
// saved index. Throws vislint::Error for a hash-only work dir or an unreadable image.
std::vector<SimilarHit> similar(const std::string& work_dir, const std::string& image, int k);

// Same for an embedding vector (dim floats, normalised here) or an 8-bit BGR image in memory.
std::vector<SimilarHit> similar_to_vector(const std::string& work_dir, const float* vec, int dim, int k);
std::vector<SimilarHit> similar_to_pixels(const std::string& work_dir, const uint8_t* bgr, int width,
                                          int height, int k);

} // namespace vislint
