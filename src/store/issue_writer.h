// The issues table written as a difference: each scan re-derives every issue row, and the rows
// it derives again unchanged are left where they are, so a re-scan that changes a few images
// writes a few rows instead of deleting and inserting all of them (at 1 M images with ~0.9 M
// near-duplicate rows that rewrite, its index updates and its WAL pages were a large part of
// the re-scan). The table's content afterwards is exactly the rows added, as a fresh write
// would give (row ids may differ: nothing refers to them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/db.h"

namespace vislint::store {

class IssueWriter {
public:
    // Reads the key of every row in `issues` (24 bytes each are kept, plus 8-16 bytes of table). Call inside the
    // transaction the rows are written in.
    explicit IssueWriter(Db& db);

    // One derived row: kept if an equal row (every column but the id) is in the table and not
    // yet claimed, inserted otherwise. A NaN score or threshold is stored as NULL (SQLite's
    // rule), and compared so.
    void add(const std::string& type, int64_t image_id, const int64_t* other_id, double score,
             const double* threshold, const std::string& detail);

    // Deletes the rows that were not added again. Call once, after the last add().
    void finish();

    uint64_t kept() const { return kept_; }
    uint64_t inserted() const { return inserted_; }
    uint64_t deleted() const { return deleted_; }

private:
    struct Entry {
        uint64_t hi, lo; // XXH3-128 of the row's columns
        int64_t rowid;
    };
    static constexpr uint32_t kEmpty = UINT32_MAX;
    Db& db_;
    std::vector<Entry> old_;      // in table order
    std::vector<bool> claimed_;
    std::vector<uint32_t> slots_; // hash table of indices into old_ (kEmpty = free)
    Stmt ins_;
    std::string buf_; // add()'s key buffer, reused
    uint64_t kept_ = 0, inserted_ = 0, deleted_ = 0;
};

} // namespace vislint::store
