#include "store/db.h"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "common/text.h"
#include <xxhash.h>

#include "store/work_dir.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::store {
namespace {

const char* kSchemaVersion = "5";

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS images(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  file_size INTEGER,
  mtime_ns INTEGER,
  status TEXT NOT NULL,
  error TEXT,
  format TEXT,
  ext_format TEXT,
  width INTEGER, height INTEGER, channels INTEGER, bit_depth INTEGER, orientation INTEGER,
  brightness REAL, brightness_p01 REAL, brightness_p99 REAL, contrast REAL, blur REAL, entropy REAL, saturation REAL,
  colour_fraction REAL, is_grayscale INTEGER,
  file_hash TEXT, pixel_hash TEXT, phash INTEGER, dhash INTEGER,
  has_embedding INTEGER, outlier_score REAL, outlier_z REAL, nn_id INTEGER, nn_sim REAL,
  source_path TEXT, box TEXT,
  derived INTEGER,
  variant_hashes BLOB);
CREATE TABLE IF NOT EXISTS small_thumbs(
  image_id INTEGER PRIMARY KEY,
  width INTEGER NOT NULL, height INTEGER NOT NULL,
  pixels BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS issues(
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  image_id INTEGER NOT NULL,
  other_id INTEGER,
  score REAL,
  threshold REAL,
  detail TEXT);
DROP INDEX IF EXISTS issues_type;
-- By type and score: the report's strongest rows of a type are the first entries (no sort of
-- the 1 M near-duplicate rows), and the counts per type read the index alone.
CREATE INDEX IF NOT EXISTS issues_rank ON issues(type, score);
CREATE INDEX IF NOT EXISTS issues_image ON issues(image_id);
CREATE TABLE IF NOT EXISTS clusters(
  cluster_id INTEGER NOT NULL,
  image_id INTEGER NOT NULL,
  PRIMARY KEY(cluster_id, image_id));
CREATE TABLE IF NOT EXISTS embedding_index(
  pos INTEGER PRIMARY KEY,
  image_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS duplicate_groups(
  group_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  image_id INTEGER NOT NULL,
  is_keeper INTEGER NOT NULL,
  PRIMARY KEY(group_id, image_id));
CREATE TABLE IF NOT EXISTS labels(
  image_id INTEGER PRIMARY KEY,
  label TEXT,
  split TEXT,
  label_score REAL,
  suggested TEXT);
CREATE TABLE IF NOT EXISTS hash_pairs(
  a INTEGER NOT NULL,
  b INTEGER NOT NULL,
  distance INTEGER NOT NULL,
  PRIMARY KEY(a, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS label_votes(
  image_id INTEGER NOT NULL,
  rank INTEGER NOT NULL,
  neighbour_id INTEGER NOT NULL,
  PRIMARY KEY(image_id, rank));
)sql";

hash::Hash128 parse_hash(std::string_view hex) {
    hash::Hash128 h;
    if (hex.size() != 32) return h;
    uint64_t v[2] = {0, 0};
    for (size_t i = 0; i < 32; ++i) {
        const char c = hex[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return hash::Hash128{};
        v[i / 16] = (v[i / 16] << 4) | uint64_t(d);
    }
    h.high = v[0];
    h.low = v[1];
    return h;
}

StatusCode parse_status(const std::string& s) {
    for (int c = 0; c <= int(StatusCode::kNotRegularFile); ++c)
        if (s == status_code_name(StatusCode(c))) return StatusCode(c);
    return StatusCode::kCorrupt;
}

std::string file_of(sqlite3* db) {
    const char* f = sqlite3_db_filename(db, "main");
    return f && *f ? f : kDbName;
}

// A failed SQLite call: damage and read-only storage get errors a user can act on.
[[noreturn]] void fail(sqlite3* db, const std::string& context) {
    const int code = sqlite3_errcode(db);
    const std::string msg = sqlite3_errmsg(db);
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) throw_damaged(file_of(db), msg);
    if (code == SQLITE_READONLY)
        throw Error("work dir " + fs::path(file_of(db)).parent_path().string() +
                    " is read-only: cannot write " + file_of(db) + " (" + msg + ")");
    if (code == SQLITE_FULL) throw Error("disk full while writing " + file_of(db) + " (" + msg + ")");
    throw Error("SQLite: " + msg + context);
}

// "file:" URI of a path (immutable mode is only reachable through a URI).
std::string file_uri(const std::string& path) {
    std::string out = "file:";
    for (unsigned char c : path) {
        if (c == '%' || c == '?' || c == '#' || c < 0x20) {
            char buf[4];
            std::snprintf(buf, sizeof(buf), "%%%02X", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out;
}

} // namespace

void throw_damaged(const std::string& path, const std::string& why) {
    throw Error("the work dir database " + path + " is damaged (" + why +
                "): delete the work dir or re-scan with --rebuild");
}

Stmt::Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
        fail(db, " in: " + sql.substr(0, 80));
}
Stmt::~Stmt() { sqlite3_finalize(stmt_); }
Stmt& Stmt::bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); return *this; }
Stmt& Stmt::bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); return *this; }
Stmt& Stmt::bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
}
Stmt& Stmt::bind_null(int i) { sqlite3_bind_null(stmt_, i); return *this; }
bool Stmt::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "");
}
void Stmt::run() { step(); reset(); }
void Stmt::reset() { sqlite3_reset(stmt_); sqlite3_clear_bindings(stmt_); }
std::string Stmt::text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(stmt_, col)) : "";
}

std::string_view Stmt::view(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? std::string_view(reinterpret_cast<const char*>(t), size_t(sqlite3_column_bytes(stmt_, col)))
             : std::string_view();
}

Db::Db(const std::string& path, bool read_only, bool check) {
    // A Db is used from one thread at a time (each caller opens its own): SQLite's per-call
    // mutex would cost ~20 % of a re-scan of unchanged rows (millions of column reads).
    int flags = (read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) |
                SQLITE_OPEN_NOMUTEX;
    std::string name = path;
    if (read_only && !is_writable_dir(fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string())) {
        // No -shm can be created here, so WAL reads would fail; nobody can be writing either.
        name = file_uri(path) + "?immutable=1";
        flags |= SQLITE_OPEN_URI;
    }
    if (sqlite3_open_v2(name.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw Error("cannot open " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
    try {
        if (check) {
            Stmt qc(db_, "PRAGMA quick_check(1)");
            const std::string verdict = qc.step() ? qc.text(0) : "no answer from quick_check";
            if (verdict != "ok") throw_damaged(path, verdict);
        }
    } catch (...) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw;
    }
    if (!read_only) {
        exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
        // A work dir from another schema version is rebuilt from scratch (all images re-analysed).
        exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)");
        std::string v = meta("schema_version");
        if (v != kSchemaVersion) {
            exec("DROP TABLE IF EXISTS images; DROP TABLE IF EXISTS issues; "
                 "DROP TABLE IF EXISTS clusters; DROP TABLE IF EXISTS embedding_index; "
                 "DROP TABLE IF EXISTS duplicate_groups; DROP TABLE IF EXISTS labels; "
                 "DROP TABLE IF EXISTS label_votes; DROP TABLE IF EXISTS hash_pairs; DROP TABLE IF EXISTS small_thumbs; DELETE FROM meta;");
        }
        exec(kSchema);
        set_meta("schema_version", kSchemaVersion);
    }
}
Db::~Db() { sqlite3_close(db_); }

void Db::exec(const std::string& sql) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) fail(db_, "");
}

void Db::leave_wal() {
    try {
        exec("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;");
    } catch (const Error&) {
        // Busy (a reader holds the database): it stays in WAL mode, still readable where writable.
    }
}

std::string Db::meta(const std::string& key) {
    Stmt s(db_, "SELECT value FROM meta WHERE key = ?");
    s.bind(1, key);
    return s.step() ? s.text(0) : "";
}

void Db::set_meta(const std::string& key, const std::string& value) {
    Stmt s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    s.bind(1, key).bind(2, value).run();
}

const std::string& image_upsert_sql() {
    static const std::string kSql =
        "INSERT OR REPLACE INTO images(id, path, file_size, mtime_ns, status, error, format, "
        "ext_format, width, height, channels, bit_depth, orientation, brightness, brightness_p01, "
        "brightness_p99, contrast, blur, entropy, saturation, colour_fraction, is_grayscale, "
        "file_hash, pixel_hash, phash, dhash, has_embedding, source_path, box, variant_hashes) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    return kSql;
}

void bind_image(Stmt& s, const ImageRecord& r) {
    s.bind(1, r.id).bind(2, r.path).bind(3, r.file_size).bind(4, r.mtime_ns);
    s.bind(5, std::string(status_code_name(r.status.code)));
    s.bind(27, int64_t(r.has_embedding));
    if (r.source.empty()) s.bind_null(28); else s.bind(28, r.source);
    if (r.box.empty()) s.bind_null(29); else s.bind(29, r.box);
    // Decoder messages can carry library text of any bytes and length; the stored text (and so
    // the broken row's detail) is printable and short.
    if (r.status.ok()) s.bind_null(6); else s.bind(6, sanitize_message(r.status.to_string()));
    s.bind(7, r.format).bind(8, r.ext_format);
    if (!r.has_pixels) {
        for (int i = 9; i <= 26; ++i) s.bind_null(i);
        s.bind_null(30);
        if (r.file_size > 0) s.bind(23, r.file_hash.hex());
        return;
    }
    s.bind(9, int64_t(r.width)).bind(10, int64_t(r.height)).bind(11, int64_t(r.channels));
    s.bind(12, int64_t(r.bit_depth)).bind(13, int64_t(r.orientation));
    s.bind(14, r.stats.brightness).bind(15, r.stats.brightness_p01).bind(16, r.stats.brightness_p99);
    s.bind(17, r.stats.contrast).bind(18, r.stats.blur);
    s.bind(19, r.stats.entropy).bind(20, r.stats.saturation).bind(21, r.stats.colour_fraction);
    s.bind_null(22); // is_grayscale depends on a threshold: set when issues are derived
    s.bind(23, r.file_hash.hex()).bind(24, r.pixel_hash.hex());
    s.bind(25, int64_t(r.phash)).bind(26, int64_t(r.dhash));
    if (!r.has_variants) {
        s.bind_null(30);
        return;
    }
    // Little-endian pairs (pHash, dHash) per view, 16 bytes each.
    unsigned char blob[sizeof(uint64_t) * 2 * hash::kVariantCount];
    for (int i = 0; i < hash::kVariantCount; ++i) {
        for (int b = 0; b < 8; ++b) {
            blob[16 * i + b] = (unsigned char)(r.variants.views[i].phash >> (8 * b));
            blob[16 * i + 8 + b] = (unsigned char)(r.variants.views[i].dhash >> (8 * b));
        }
    }
    sqlite3_bind_blob(s.handle(), 30, blob, int(sizeof(blob)), SQLITE_TRANSIENT);
}

namespace {

constexpr const char* kImageColumns =
    "SELECT id, path, file_size, mtime_ns, status, error, format, ext_format, width, height, "
    "channels, bit_depth, orientation, brightness, brightness_p01, brightness_p99, contrast, "
    "blur, entropy, saturation, colour_fraction, file_hash, pixel_hash, phash, dhash, "
    "has_embedding, derived, is_grayscale, variant_hashes FROM images";

ImageRecord image_of_row(const Stmt& s) {
    ImageRecord r;
    r.id = s.int64(0);
    r.path = s.text(1);
    r.file_size = s.is_null(2) ? -1 : s.int64(2);
    r.mtime_ns = s.int64(3);
    r.status.code = parse_status(s.text(4));
    if (!r.status.ok()) {
        std::string e = s.text(5);
        size_t colon = e.find(": ");
        r.status.message = colon == std::string::npos ? "" : e.substr(colon + 2);
    }
    r.format = s.text(6);
    r.ext_format = s.text(7);
    r.has_pixels = r.status.ok() && !s.is_null(8);
    r.file_hash = parse_hash(s.view(21));
    if (r.has_pixels) {
        r.width = int(s.int64(8));
        r.height = int(s.int64(9));
        r.channels = int(s.int64(10));
        r.bit_depth = int(s.int64(11));
        r.orientation = int(s.int64(12));
        r.stats.brightness = s.real(13);
        r.stats.brightness_p01 = s.real(14);
        r.stats.brightness_p99 = s.real(15);
        r.stats.contrast = s.real(16);
        r.stats.blur = s.real(17);
        r.stats.entropy = s.real(18);
        r.stats.saturation = s.real(19);
        r.stats.colour_fraction = s.real(20);
        r.pixel_hash = parse_hash(s.view(22));
        r.phash = uint64_t(s.int64(23));
        r.dhash = uint64_t(s.int64(24));
        const auto* v = static_cast<const unsigned char*>(sqlite3_column_blob(s.handle(), 28));
        if (v && sqlite3_column_bytes(s.handle(), 28) == 16 * hash::kVariantCount) {
            r.has_variants = true;
            for (int i = 0; i < hash::kVariantCount; ++i) {
                uint64_t ph = 0, dh = 0;
                for (int b = 7; b >= 0; --b) {
                    ph = (ph << 8) | v[16 * i + b];
                    dh = (dh << 8) | v[16 * i + 8 + b];
                }
                r.variants.views[i] = {ph, dh};
            }
        }
    }
    r.has_embedding = s.int64(25) != 0; // embeddings-only items have one and no pixels
    r.derived = !s.is_null(26);
    r.stored_grayscale = s.is_null(27) ? -1 : int(s.int64(27));
    return r;
}

} // namespace

void for_each_image(Db& db, const std::function<void(ImageRecord&&)>& f) {
    Stmt s(db.handle(), std::string(kImageColumns) + " ORDER BY id");
    while (s.step()) f(image_of_row(s));
}

void for_each_image(const std::string& db_path, int threads, const std::function<void(ImageRecord&&)>& f,
                    int64_t batch_ids) {
    int64_t max_id;
    {
        Db db(db_path, true, false);
        Stmt m(db.handle(), "SELECT coalesce(max(id), -1) FROM images");
        m.step();
        max_id = m.int64(0);
    }
    // Batches of ids, decoded round-robin by the readers (batch b by reader b % readers), handed
    // to `f` in order on the calling thread. A reader stays at most kAhead batches ahead of the
    // caller, so memory is bounded by the batches in flight.
    const int64_t kBatchIds = std::max<int64_t>(1, batch_ids);
    const int readers = std::max(1, threads);
    const int64_t batches = (max_id + kBatchIds) / kBatchIds;
    const int64_t ahead = 2 * int64_t(readers);
    std::vector<std::vector<ImageRecord>> slot(static_cast<size_t>(ahead));
    std::vector<int64_t> slot_batch(static_cast<size_t>(ahead), -1); // the batch a slot holds, -1 = empty
    int64_t consumed = 0; // batches handed to f
    bool stop = false;
    std::exception_ptr error;
    std::mutex mu;
    std::condition_variable cv;
    auto read = [&](int reader) {
        try {
            Db db(db_path, true, false);
            db.exec("BEGIN"); // one snapshot for every batch of this reader
            Stmt s(db.handle(), std::string(kImageColumns) + " WHERE id >= ? AND id < ? ORDER BY id");
            for (int64_t b = reader; b < batches; b += readers) {
                {
                    std::unique_lock<std::mutex> lock(mu);
                    cv.wait(lock, [&] { return stop || b < consumed + ahead; });
                    if (stop) return;
                }
                std::vector<ImageRecord> rows;
                s.bind(1, b * kBatchIds).bind(2, (b + 1) * kBatchIds);
                while (s.step()) rows.push_back(image_of_row(s));
                s.reset();
                std::lock_guard<std::mutex> lock(mu);
                slot[size_t(b % ahead)] = std::move(rows);
                slot_batch[size_t(b % ahead)] = b;
                cv.notify_all();
            }
            db.exec("COMMIT");
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu);
            if (!error) error = std::current_exception();
            stop = true;
            cv.notify_all();
        }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < readers; ++t) pool.emplace_back(read, t);
    auto finish = [&] {
        {
            std::lock_guard<std::mutex> lock(mu);
            stop = true;
            cv.notify_all();
        }
        for (auto& th : pool) th.join();
    };
    try {
        for (int64_t b = 0; b < batches; ++b) {
            std::vector<ImageRecord> rows;
            {
                std::unique_lock<std::mutex> lock(mu);
                cv.wait(lock, [&] { return stop || slot_batch[size_t(b % ahead)] == b; });
                if (slot_batch[size_t(b % ahead)] != b) break; // a reader failed
                rows = std::move(slot[size_t(b % ahead)]);
                slot_batch[size_t(b % ahead)] = -1;
                consumed = b + 1;
                cv.notify_all();
            }
            for (ImageRecord& r : rows) f(std::move(r));
        }
    } catch (...) {
        finish();
        throw;
    }
    finish();
    if (error) std::rethrow_exception(error);
}

std::vector<ImageRecord> read_images(Db& db) {
    std::vector<ImageRecord> out;
    for_each_image(db, [&](ImageRecord&& r) { out.push_back(std::move(r)); });
    return out;
}

std::string schema_version() { return kSchemaVersion; }

SmallThumbWriter::SmallThumbWriter(Db& db)
    : put_(db.handle(), "INSERT OR REPLACE INTO small_thumbs(image_id, width, height, pixels) VALUES(?,?,?,?)"),
      del_(db.handle(), "DELETE FROM small_thumbs WHERE image_id = ?") {}

void SmallThumbWriter::write(const ImageRecord& r) {
    if (!r.has_pixels || r.small_thumb.empty()) {
        remove(r.id);
        return;
    }
    const auto& t = r.small_thumb;
    put_.bind(1, r.id).bind(2, int64_t(t.width)).bind(3, int64_t(t.height));
    sqlite3_bind_blob(put_.handle(), 4, t.pixels.data(), int(t.pixels.size()), SQLITE_TRANSIENT);
    put_.run();
}

void SmallThumbWriter::remove(int64_t id) { del_.bind(1, id).run(); }

SmallThumbReader::SmallThumbReader(Db& db)
    : get_(db.handle(), "SELECT width, height, pixels FROM small_thumbs WHERE image_id = ?") {}

bool SmallThumbReader::get(int64_t id, hash::SmallThumb* out) {
    get_.bind(1, id);
    bool found = false;
    if (get_.step()) {
        const int64_t w = get_.int64(0), h = get_.int64(1);
        const auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(get_.handle(), 2));
        const size_t n = size_t(sqlite3_column_bytes(get_.handle(), 2));
        // A row whose sizes disagree with its bytes is damage: treated as no thumbnail.
        if (hash::is_small_image(w, h) && data && n == size_t(w * h)) {
            out->width = int(w);
            out->height = int(h);
            out->pixels.assign(data, data + n);
            found = true;
        }
    }
    get_.reset();
    return found;
}

namespace {

// Feeds every value of every row of `s` to `state`, each as type tag + bytes (so that NULL, 0
// and "" differ; integers as their 8 bytes, not as text). Values are a few bytes each: they are
// gathered into a buffer and hashed in 64 KB blocks (a call of XXH3 per value cost a quarter of
// the checksum at 1 M rows).
void hash_rows(Stmt& s, XXH3_state_t* state) {
    unsigned char buf[1 << 16];
    size_t used = 0;
    auto feed = [&](const void* p, size_t n) {
        if (used + n > sizeof(buf)) {
            XXH3_128bits_update(state, buf, used);
            used = 0;
        }
        if (n > sizeof(buf)) XXH3_128bits_update(state, p, n);
        else std::memcpy(buf + used, p, n), used += n;
    };
    // A tag byte and 8 value bytes (an integer, a double or a text length).
    auto feed_tagged = [&](char tag, const void* value8) {
        unsigned char v[9] = {static_cast<unsigned char>(tag)};
        std::memcpy(v + 1, value8, 8);
        feed(v, 9);
    };
    sqlite3_stmt* st = s.handle();
    const int nc = s.columns();
    while (s.step()) {
        for (int c = 0; c < nc; ++c) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_NULL:
                feed("n", 1);
                break;
            case SQLITE_INTEGER: {
                const int64_t x = sqlite3_column_int64(st, c);
                feed_tagged('i', &x);
                break;
            }
            case SQLITE_FLOAT: {
                const double x = sqlite3_column_double(st, c);
                feed_tagged('r', &x);
                break;
            }
            default: {
                const void* p = sqlite3_column_blob(st, c);
                const uint64_t n = uint64_t(sqlite3_column_bytes(st, c));
                feed_tagged('t', &n);
                if (n) feed(p, n);
            }
            }
        }
    }
    XXH3_128bits_update(state, buf, used);
}

// Hashes the rows of each query in order into one XXH3-128 stream; `bind` is given to the
// queries that take ?1.
XXH128_hash_t hash_queries(Db& db, const std::vector<const char*>& queries, int64_t bind = 0) {
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
    XXH3_128bits_reset(state.get());
    for (const char* sql : queries) {
        XXH3_128bits_update(state.get(), sql, std::strlen(sql) + 1);
        Stmt s(db.handle(), sql);
        if (sqlite3_bind_parameter_count(s.handle()) > 0) s.bind(1, bind);
        hash_rows(s, state.get());
    }
    return XXH3_128bits_digest(state.get());
}

std::string hex(XXH128_hash_t h) {
    char out[33];
    std::snprintf(out, sizeof(out), "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    return out;
}

const char* const kMetaRows = "SELECT key, value FROM meta WHERE key NOT IN ('checksum', 'run_state') ORDER BY key";

// Version 2 ("2:" + hex): four parts, each on its own read connection (the images rows in two
// halves by id, the issues, the other tables and meta), then a hash of the four digests.
constexpr const char* kVersion2 = "2:";

} // namespace

std::string content_checksum(Db& db) {
    return hex(hash_queries(db, {"SELECT * FROM images ORDER BY id", "SELECT * FROM issues ORDER BY id",
                                 "SELECT * FROM duplicate_groups ORDER BY group_id, image_id",
                                 "SELECT * FROM clusters ORDER BY cluster_id, image_id",
                                 "SELECT * FROM embedding_index ORDER BY pos",
                                 "SELECT * FROM labels ORDER BY image_id",
                                 "SELECT * FROM label_votes ORDER BY image_id, rank",
                                 "SELECT * FROM hash_pairs ORDER BY a, b",
                                 "SELECT * FROM small_thumbs ORDER BY image_id", kMetaRows}));
}

std::string committed_checksum(const std::string& db_path, int threads) {
    int64_t half;
    {
        Db db(db_path, true, false);
        Stmt m(db.handle(), "SELECT coalesce(max(id), 0) FROM images");
        m.step();
        half = m.int64(0) / 2;
    }
    const std::vector<std::vector<const char*>> parts = {
        {"SELECT * FROM images WHERE id < ?1 ORDER BY id"},
        {"SELECT * FROM images WHERE id >= ?1 ORDER BY id"},
        {"SELECT * FROM issues ORDER BY id"},
        {"SELECT * FROM duplicate_groups ORDER BY group_id, image_id",
         "SELECT * FROM clusters ORDER BY cluster_id, image_id", "SELECT * FROM embedding_index ORDER BY pos",
         "SELECT * FROM labels ORDER BY image_id", "SELECT * FROM label_votes ORDER BY image_id, rank",
         "SELECT * FROM hash_pairs ORDER BY a, b", "SELECT * FROM small_thumbs ORDER BY image_id", kMetaRows}};
    std::vector<XXH128_hash_t> digests(parts.size());
    std::vector<std::exception_ptr> errors(parts.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t i; (i = next.fetch_add(1)) < parts.size();) {
            try {
                Db db(db_path, true, false);
                db.exec("BEGIN"); // one snapshot for the part's queries
                digests[i] = hash_queries(db, parts[i], half);
                db.exec("COMMIT");
            } catch (...) {
                errors[i] = std::current_exception();
            }
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::min<int>(std::max(threads, 1), int(parts.size())); ++t) pool.emplace_back(work);
    work();
    for (auto& th : pool) th.join();
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);
    std::string joined = kVersion2 + std::to_string(half);
    for (const auto& d : digests) joined.append(reinterpret_cast<const char*>(&d), sizeof(d));
    return kVersion2 + hex(XXH3_128bits(joined.data(), joined.size()));
}

bool checksum_matches(Db& db, const std::string& stored, int threads) {
    const std::string path = sqlite3_db_filename(db.handle(), "main");
    try {
        if (stored.rfind(kVersion2, 0) == 0) return committed_checksum(path, threads) == stored;
        return content_checksum(db) == stored; // written by an earlier version
    } catch (const Error& e) {
        // A query of the checksum failing on a database that opened is damage too (a table
        // definition in the schema page changed, a column lost its name).
        throw_damaged(path, std::string("its rows cannot be read: ") + e.what());
    }
    return false;
}

} // namespace vislint::store
