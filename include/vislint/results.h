// Reading a work dir written by scan(). Safe to call from several threads (each call opens its
// own read-only SQLite connection).
#pragma once

#include <cstdint>
#include <map>
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

// What the cells of a Table column hold. Every cell is text as the CLI prints it in CSV; an
// empty cell is no value (SQL NULL). kInteger / kReal cells are decimal numbers (JSON output
// writes them as numbers), kText cells are text (names as stored: any bytes).
enum class ColumnType { kText, kInteger, kReal };

// A table of strings, columns named in `columns` and typed in `types` (one each).
struct Table {
    std::vector<std::string> columns;
    std::vector<ColumnType> types;
    std::vector<std::vector<std::string>> rows;
};

// The per-image statistics, one row per image: integers, reals (6 significant digits), text;
// phash and dhash as 16 lower-case hex digits (the unsigned 64-bit hash), file_hash as 32.
Table read_stats(const std::string& work_dir);

// Per class (label): items, then per issue type the items of that class with such an issue
// (only types found in some class), most frequent class first. Empty without labels.
Table read_classes(const std::string& work_dir);

// The class pairs most often confused: given, suggested, label_issue rows; most first.
Table read_confusions(const std::string& work_dir);

// Ground truth for evaluate(): one row per finding; other_path is empty for single-image types
// (and ignored for them: outlier and label_issue rows of `vislint issues` carry a neighbour).
struct TruthRow {
    std::string type; // an issue type
    std::string path, other_path;
};

// TRUTH.csv: a header naming `type` and `path` (and `other_path` for pair types), any case and
// order, other columns ignored -- so `vislint issues --format csv` output reads as truth. Throws
// vislint::Error naming the file and line for a missing column, an unknown type, an empty path,
// or a pair type (exact_duplicate, near_duplicate, leak) without other_path.
std::vector<TruthRow> read_truth_csv(const std::string& csv_path);

struct TypeScore {
    double precision = 0, recall = 0, f1 = 0; // 0 where undefined (nothing predicted / nothing true)
    uint64_t predicted = 0, truth = 0, matched = 0;
};

// Precision, recall and F1 of the work dir's issue rows against `truth`, one entry per type
// present in either (graph/evaluate.h has the rules: single-image types as sets of items, leak
// as unordered pairs, duplicates as the pairs of items in one group after closing both sides
// transitively -- "duplicate" for exact and near together, "exact_duplicate" for exact alone).
// Truth names match items as written, else resolved against `base_dir` (the CSV's folder; ""
// = the current directory) to the absolute form scans store. `warnings` gets one line when
// some truth names are no item of the work dir (they count as missed).
std::map<std::string, TypeScore> evaluate(const std::string& work_dir, const std::vector<TruthRow>& truth,
                                          const std::string& base_dir = "",
                                          std::vector<std::string>* warnings = nullptr);

// evaluate() against read_truth_csv(csv_path), its relative names taken against the CSV's folder.
std::map<std::string, TypeScore> evaluate_csv(const std::string& work_dir, const std::string& csv_path,
                                              std::vector<std::string>* warnings = nullptr);

struct SimilarHit {
    std::string path;
    double score = 0; // cosine similarity
};

// The largest k of a similarity search.
constexpr int kMaxSimilarK = 100000;

// The k dataset images most similar to `image` (a file inside or outside the dataset; the file
// itself is left out of its own results, however `image` is spelled: relative, with ./ or ..,
// or through a symlink; it is the same file when its normalised absolute path or its device and
// inode match an item's). Embeds it with the scan's model and searches the saved index. Throws
// vislint::Error for a hash-only work dir, an unreadable image, k outside 1..kMaxSimilarK, or a
// query the model gives no usable embedding for.
std::vector<SimilarHit> similar(const std::string& work_dir, const std::string& image, int k);

// Same for an embedding vector (dim floats, normalised here) or an 8-bit BGR image in memory.
std::vector<SimilarHit> similar_to_vector(const std::string& work_dir, const float* vec, int dim, int k);
std::vector<SimilarHit> similar_to_pixels(const std::string& work_dir, const uint8_t* bgr, int width,
                                          int height, int k);

} // namespace vislint
