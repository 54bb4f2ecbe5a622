// A thin RAII wrapper over SQLite and the work dir's schema (docs/workdir.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <sqlite3.h>

#include "store/image_record.h"

namespace vislint::store {

class Stmt {
public:
    Stmt(sqlite3* db, const std::string& sql);
    ~Stmt();
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, int64_t v);
    Stmt& bind(int i, double v);
    Stmt& bind(int i, const std::string& v);
    Stmt& bind_null(int i);
    bool step(); // true while a row is available; throws vislint::Error on failure
    void run();  // step once and reset, for INSERT/UPDATE/DELETE
    void reset();

    int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
    double real(int col) const { return sqlite3_column_double(stmt_, col); }
    std::string text(int col) const;
    // The same without a copy: valid until the next step() or reset() ("" for NULL).
    std::string_view view(int col) const;
    bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
    bool is_real(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_FLOAT; }
    int columns() const { return sqlite3_column_count(stmt_); }
    sqlite3_stmt* handle() const { return stmt_; }
    std::string column_name(int col) const { return sqlite3_column_name(stmt_, col); }
    // The column's declared type in the schema ("INTEGER", ...); "" for an expression.
    std::string declared_type(int col) const {
        const char* t = sqlite3_column_decltype(stmt_, col);
        return t ? t : "";
    }

private:
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

class Db {
public:
    // Opens (read_only: must exist) or creates the database at `path` with the current schema,
    // after SQLite's quick_check (a damaged file throws vislint::Error naming it and the fix).
    // Read-only opens of a database in a read-only folder use SQLite's immutable mode, which
    // needs no -shm / -wal files (scan() leaves the database in rollback-journal mode).
    // `check` false skips the quick_check (open_results(), for a file this process has just
    // written and verified).
    Db(const std::string& path, bool read_only, bool check = true);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    void exec(const std::string& sql);
    sqlite3* handle() { return db_; }
    std::string meta(const std::string& key);
    void set_meta(const std::string& key, const std::string& value);
    // Checkpoints the write-ahead log into the database and leaves WAL mode (best effort: a
    // reader that holds the database open keeps it in WAL mode).
    void leave_wal();

private:
    sqlite3* db_ = nullptr;
};

// The file name of the database inside a work dir.
inline const char* kDbName = "vislint.db";

// Writes (insert or replace) one image row. `stmt` must come from image_upsert_sql().
void bind_image(Stmt& stmt, const ImageRecord& r);
const std::string& image_upsert_sql();

// The small_thumbs row of an image (hash/small_copy.h): written when the record has a
// thumbnail, deleted when it has none (a row rewritten after its file changed must not keep the
// old thumbnail), deleted with the image.
class SmallThumbWriter {
public:
    explicit SmallThumbWriter(Db& db);
    void write(const ImageRecord& r);
    void remove(int64_t image_id);

private:
    Stmt put_, del_;
};

// Thumbnails by image id (point lookups on the primary key).
class SmallThumbReader {
public:
    explicit SmallThumbReader(Db& db);
    bool get(int64_t image_id, hash::SmallThumb* out); // false: the image has none

private:
    Stmt get_;
};

// Reads every image row, ordered by id.
std::vector<ImageRecord> read_images(Db& db);
// The same, one row at a time (memory independent of the number of rows). `f` must not write
// the images table.
void for_each_image(Db& db, const std::function<void(ImageRecord&&)>& f);
// The same rows as committed in the database at `db_path`, decoded on `threads` read
// connections in batches of ids and handed to `f` in id order on the calling thread (a re-scan
// of 1 M images spends seconds decoding rows). REQUIRES: no uncommitted change to the images
// table on any connection: the readers see the committed rows only.
void for_each_image(const std::string& db_path, int threads, const std::function<void(ImageRecord&&)>& f,
                    int64_t batch_ids = 4096);

// xxh3-128 (hex) of every row of every results table and of the meta keys other than
// `checksum` and `run_state`, in a fixed order. A complete scan stores it as meta `checksum`;
// readers recompute it, which catches damage inside row payloads that quick_check cannot see.
std::string content_checksum(Db& db);
// The same rows as committed in the database at `db_path`, hashed in four parts on up to
// `threads` read connections ("2:" + hex: another value than content_checksum()). What a scan
// stores, once its results are committed.
std::string committed_checksum(const std::string& db_path, int threads);
// Whether the rows match a stored checksum of either kind. `db` must have no uncommitted writes.
// Rows that cannot be read at all throw the "is damaged" error (throw_damaged).
bool checksum_matches(Db& db, const std::string& stored, int threads);
// The schema this version writes and reads ("5"); a read-only open of another is refused.
std::string schema_version();

// The error for a damaged database: names the file and the fix.
[[noreturn]] void throw_damaged(const std::string& path, const std::string& why);

} // namespace vislint::store
