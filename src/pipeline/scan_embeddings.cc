// Scan step 2 of the embeddings-only mode (`--embeddings EMB.npy --names NAMES.txt`): the items
// are the lines of the names file, their vectors the rows of the .npy. Nothing is decoded or
// opened besides those two files (and a labels CSV); there are no per-image stats or hashes.
//
// Both files are checked whole before anything is written, so a bad file leaves the work dir as
// it was. The import then streams: rows are read from the memory-mapped .npy in batches,
// L2-normalised and written to features.npy (float16), and each batch's image rows are committed
// after its vectors are on disk. The signature (both files' path, size and mtime) is stored
// last, so an import cut short is redone by the next scan and an unchanged pair is not re-read.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <opencv2/core.hpp>
#include <xxhash.h>

#include "common/fault.h"
#include "io/discover.h"
#include "io/labels.h"
#include "io/npy.h"
#include "pipeline/scan_steps.h"
#include "store/features.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::pipeline {
namespace {

constexpr int64_t kImportBatch = 16384;

std::string file_identity(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return path + " (missing)";
    const int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    return io::path_key(path) + " " + std::to_string(st.st_size) + " " + std::to_string(mtime);
}

// Scales each of the `count` rows of v (d floats each) to unit length. REQUIRES: no zero row
// (check_rows() refuses them before anything is imported).
void normalise_rows(float* v, int64_t count, int d) {
    for (int64_t r = 0; r < count; ++r, v += d) {
        double norm = 0;
        for (int j = 0; j < d; ++j) norm += double(v[j]) * v[j];
        const float inv = float(1.0 / std::sqrt(norm));
        for (int j = 0; j < d; ++j) v[j] *= inv;
    }
}

// The next name of a names file (its line without LF or CRLF). Throws vislint::Error at its end.
void next_name(std::istream& in, const std::string& path, std::string* name) {
    if (!std::getline(in, *name)) throw Error("cannot read names file " + path);
    if (!name->empty() && name->back() == '\r') name->pop_back();
}

// Row `id` of the images table for item `name` (an embeddings-only item: a vector, no pixels).
void write_item(store::Stmt& upsert, int64_t id, const std::string& name) {
    store::ImageRecord rec;
    rec.id = id;
    rec.path = name;
    rec.format = "embedding";
    rec.ext_format = "embedding";
    rec.has_embedding = true;
    store::bind_image(upsert, rec);
    upsert.run();
}

// Reads the names file line by line (LF or CRLF); calls f(line_number, name) for each line.
template <typename F> void for_each_name(const std::string& path, F&& f) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot read names file " + path + ": " + std::strerror(errno));
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        f(n, line);
    }
    if (in.bad()) throw Error("cannot read names file " + path);
}

// Line count, after checking that no line is empty and no name repeats (by 64-bit hash; a hash
// collision is confirmed on the names themselves before it is reported).
int64_t check_names(const std::string& path) {
    std::vector<uint64_t> hashes;
    for_each_name(path, [&](int64_t line, const std::string& name) {
        if (name.empty())
            throw Error(path + ":" + std::to_string(line) + ": empty name (every line names one item)");
        hashes.push_back(XXH3_64bits(name.data(), name.size()));
    });
    std::vector<uint64_t> sorted = hashes;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 1; i < sorted.size(); ++i) {
        if (sorted[i] != sorted[i - 1]) continue;
        const uint64_t h = sorted[i];
        std::vector<std::pair<int64_t, std::string>> same;
        for_each_name(path, [&](int64_t line, const std::string& name) {
            if (hashes[size_t(line - 1)] == h) same.emplace_back(line, name);
        });
        for (size_t a = 0; a < same.size(); ++a)
            for (size_t b = a + 1; b < same.size(); ++b)
                if (same[a].second == same[b].second)
                    throw Error(path + ":" + std::to_string(same[b].first) + ": name '" + same[b].second +
                                "' repeats line " + std::to_string(same[a].first) + " (names must be unique)");
    }
    return int64_t(hashes.size());
}

// Every row finite and not all zeros (an all-zero vector has no direction to compare).
// `name_of(row)` names a row in the message.
template <typename NameOf> void check_rows(const io::NpyMatrix& emb, NameOf&& name_of, Reporter& rep) {
    const int d = emb.cols();
    std::vector<float> buf(size_t(kImportBatch) * d);
    for (int64_t i0 = 0; i0 < emb.rows(); i0 += kImportBatch) {
        const int64_t m = std::min(kImportBatch, emb.rows() - i0);
        emb.read(i0, m, buf.data());
        for (int64_t r = 0; r < m; ++r) {
            const float* v = buf.data() + r * d;
            double norm = 0;
            bool finite = true;
            for (int j = 0; j < d; ++j) {
                finite = finite && std::isfinite(v[j]);
                norm += double(v[j]) * v[j];
            }
            const int64_t row = i0 + r;
            if (!finite || norm == 0)
                throw Error("embeddings row " + std::to_string(row) + " ('" + name_of(row) + "') " +
                            (finite ? "is all zeros: every item needs a non-zero vector"
                                    : "has NaN or infinite values"));
        }
        if (!rep.report("check", uint64_t(i0 + m), uint64_t(emb.rows())))
            throw Cancelled("cancelled while checking the embeddings");
    }
}

// Whether the work dir holds a complete embeddings-only import that this one can update row by
// row: the same dimension, rows numbered 0..m-1, and the names of the rows both files share
// unchanged (names renamed or reordered make a fresh import: a row's name is its identity).
bool updatable(store::Db& db, const ScanOptions& o, const std::string& features_path, int64_t n, int d) {
    const std::string previous = db.meta("analysis_signature");
    if (db.meta("model") != "embeddings" ||
        previous.rfind(std::string("vislint ") + VISLINT_VERSION + "; embeddings ", 0) != 0)
        return false; // none, of another version, or cut short (its signature is cleared)
    const auto [rows, dim] = store::feature_file_shape(features_path);
    if (dim != d || rows <= 0) return false;
    {
        store::Stmt c(db.handle(), "SELECT count(*), coalesce(max(id), -1), min(has_embedding) FROM images");
        c.step();
        if (c.int64(0) != rows || c.int64(1) != rows - 1 || c.int64(2) != 1) return false;
    }
    store::Stmt s(db.handle(), "SELECT path FROM images ORDER BY id");
    std::ifstream in(o.names, std::ios::binary);
    std::string name;
    for (int64_t i = 0; i < std::min(n, rows); ++i) {
        if (!s.step()) return false;
        next_name(in, o.names, &name); // check_names() counted n lines
        if (s.view(0) != name) return false;
    }
    return true;
}

// The update of an import: rows whose vector (as stored, float16 of the unit vector) and name
// are unchanged keep their image row, so the saved kNN index and graph keep them too; changed
// and new rows are written again and their image rows replaced (no longer derived: the kNN step
// adds them), rows past the new end are removed. A changed row's image row is committed before
// its vector is overwritten, so a crash in between leaves a row that is re-checked (and added to
// the index) by the next scan, never a stale index entry behind a row that looks derived.
uint64_t update_import(store::Db& db, const ScanOptions& o, const io::NpyMatrix& emb, int64_t n,
                       const std::string& features_path, Reporter& rep, uint64_t* removed) {
    const int64_t stored = store::feature_file_shape(features_path).first;
    *removed = uint64_t(std::max<int64_t>(0, stored - n));
    if (n < stored) {
        db.exec("BEGIN");
        store::Stmt del(db.handle(), "DELETE FROM images WHERE id >= ?");
        del.bind(1, n).run();
        db.exec("COMMIT");
    }
    const store::FeatureReader old_rows(features_path);
    store::FeatureFile features(features_path, emb.cols(), false);
    store::Stmt upsert(db.handle(), store::image_upsert_sql());
    const int d = emb.cols();
    std::vector<float> buf(size_t(kImportBatch) * d), old(size_t(kImportBatch) * d);
    std::vector<int64_t> ids(static_cast<size_t>(kImportBatch), 0);
    std::ifstream names(o.names, std::ios::binary);
    std::string name;
    uint64_t changed = 0;
    for (int64_t i0 = 0; i0 < n; i0 += kImportBatch) {
        const int64_t m = std::min(kImportBatch, n - i0);
        emb.read(i0, m, buf.data());
        normalise_rows(buf.data(), m, d);
        // Rounded as the features file stores them, so that equal means "the stored vector".
        cv::Mat now(1, int(m * d), CV_32F, buf.data()), half;
        now.convertTo(half, CV_16F);
        half.convertTo(now, CV_32F);
        const int64_t have = std::clamp<int64_t>(stored - i0, 0, m); // rows the stored file has
        for (int64_t r = 0; r < have; ++r) ids[size_t(r)] = i0 + r;
        if (have > 0) old_rows.read(ids.data(), have, old.data());
        std::vector<int64_t> rows;
        db.exec("BEGIN");
        for (int64_t r = 0; r < m; ++r) {
            next_name(names, o.names, &name);
            if (r < have && std::equal(buf.begin() + r * d, buf.begin() + (r + 1) * d, old.begin() + r * d))
                continue;
            write_item(upsert, i0 + r, name);
            rows.push_back(r);
        }
        fault_point("commit");
        db.exec("COMMIT");
        fault_point("import_rows"); // rows committed, their vectors not yet written
        for (int64_t r : rows) features.write_row(i0 + r, buf.data() + r * d);
        if (!rows.empty()) features.sync();
        changed += rows.size();
        old_rows.release_pages();
        if (!rep.report("import", uint64_t(i0 + m), uint64_t(n)))
            throw Cancelled("scan cancelled while importing embeddings; a re-run goes on from there");
    }
    features.close(n);
    rep.log("info", "embeddings: " + std::to_string(changed) + " of " + std::to_string(n) +
                        " row(s) new or changed since the last import" +
                        (*removed ? ", " + std::to_string(*removed) + " removed" : std::string()));
    return changed;
}

} // namespace

std::string embeddings_signature(const ScanOptions& o) {
    return std::string("vislint ") + VISLINT_VERSION + "; embeddings " + file_identity(o.embeddings) +
           "; names " + file_identity(o.names);
}

uint64_t import_embeddings(store::Db& db, const ScanOptions& o, bool reuse, Reporter& rep, uint64_t* removed) {
    const io::NpyMatrix emb(o.embeddings);
    const int64_t n = check_names(o.names);
    if (n != emb.rows())
        throw Error(o.names + " has " + std::to_string(n) + " name(s) but " + o.embeddings + " has " +
                    std::to_string(emb.rows()) + " row(s): line i of the names file names row i");
    if (n == 0) throw Error(o.embeddings + " has no rows: nothing to analyse");
    const std::string features_path = (fs::path(o.work_dir) / store::kFeaturesName).string();
    if (reuse && store::feature_file_shape(features_path) == std::make_pair(n, emb.cols())) return 0;
    check_rows(emb, [&](int64_t row) {
        std::string name;
        for_each_name(o.names, [&](int64_t line, const std::string& s) {
            if (line == row + 1) name = s;
        });
        return name;
    }, rep);
    if (updatable(db, o, features_path, n, emb.cols()))
        return update_import(db, o, emb, n, features_path, rep, removed);

    // A fresh import: no row of an earlier scan survives it.
    db.exec("BEGIN");
    db.set_meta("analysis_signature", ""); // until the import is complete
    db.exec("DELETE FROM images; DELETE FROM labels; DELETE FROM label_votes; DELETE FROM issues; "
            "DELETE FROM duplicate_groups; DELETE FROM clusters; DELETE FROM embedding_index; "
            "DELETE FROM small_thumbs;");
    db.exec("COMMIT");
    store::FeatureFile features(features_path, emb.cols(), true);
    store::Stmt upsert(db.handle(), store::image_upsert_sql());
    const int d = emb.cols();
    std::vector<float> buf(size_t(kImportBatch) * d);
    std::ifstream names(o.names, std::ios::binary);
    std::string name;
    for (int64_t i0 = 0; i0 < n; i0 += kImportBatch) {
        const int64_t m = std::min(kImportBatch, n - i0);
        emb.read(i0, m, buf.data());
        normalise_rows(buf.data(), m, d);
        features.write_rows(i0, m, buf.data());
        features.sync(); // the vectors are on disk before their rows say so
        db.exec("BEGIN");
        for (int64_t r = 0; r < m; ++r) {
            next_name(names, o.names, &name);
            write_item(upsert, i0 + r, name);
        }
        fault_point("commit");
        db.exec("COMMIT");
        if (!rep.report("import", uint64_t(i0 + m), uint64_t(n)))
            throw Cancelled("scan cancelled while importing embeddings; a re-run starts the import again");
    }
    features.close(n);
    return uint64_t(n);
}

GivenVectors::GivenVectors(const ScanOptions& o, Reporter& rep) : emb_(o.embeddings) {
    if (o.inputs.size() != 1 || !io::is_list_file(o.inputs[0]))
        throw Error("--embeddings with images needs exactly one list file input (.txt: row i of " +
                    o.embeddings + " is the i-th path of the list)");
    const std::vector<std::string> paths = io::read_list_file(o.inputs[0]);
    if (int64_t(paths.size()) != emb_.rows())
        throw Error(o.inputs[0] + " lists " + std::to_string(paths.size()) + " path(s) but " + o.embeddings +
                    " has " + std::to_string(emb_.rows()) + " row(s): row i belongs to the i-th path");
    for (size_t i = 0; i < paths.size(); ++i) {
        auto [it, fresh] = row_of_.emplace(paths[i], int64_t(i));
        if (!fresh)
            throw Error(o.inputs[0] + ": " + paths[i] + " is listed twice (entries " + std::to_string(it->second + 1) +
                        " and " + std::to_string(i + 1) + "), so its row is ambiguous");
    }
    check_rows(emb_, [&](int64_t row) { return paths[size_t(row)]; }, rep);
    identity_ = file_identity(o.embeddings) + " for " + file_identity(o.inputs[0]);
}

bool GivenVectors::get(const std::string& path, float* out) const {
    auto it = row_of_.find(path);
    if (it == row_of_.end()) return false;
    emb_.read(it->second, 1, out);
    normalise_rows(out, 1, dim());
    return true;
}

uint64_t write_name_labels(store::Db& db, const ScanOptions& o, Reporter& rep) {
    const LabelOptions& lo = o.labels;
    io::Annotations a;
    if (!lo.labels.empty()) a = io::read_labels_csv(lo.labels, true);
    for (const LabelRow& r : lo.rows) { // Python: a DataFrame of name, label (, split)
        io::ImageAnnotation& ann = a.by_key[r.path];
        ann.label = r.label;
        if (!r.split.empty()) ann.split = io::canonical_split(r.split);
    }
    for (const auto& w : a.warnings) rep.log("warning", w);
    db.exec("BEGIN; DELETE FROM labels;");
    store::Stmt find(db.handle(), "SELECT id FROM images WHERE path = ?");
    store::Stmt ins(db.handle(), "INSERT INTO labels(image_id, label, split) VALUES(?,?,?)");
    uint64_t labelled = 0, unknown = 0;
    std::string example;
    for (const auto& [name, ann] : a.by_key) {
        find.bind(1, name);
        const bool found = find.step();
        const int64_t id = found ? find.int64(0) : -1;
        find.reset();
        if (!found) {
            if (unknown++ == 0) example = name;
            continue;
        }
        ins.bind(1, id);
        if (ann.label.empty()) ins.bind_null(2); else ins.bind(2, ann.label);
        if (ann.split.empty()) ins.bind_null(3); else ins.bind(3, ann.split);
        ins.run();
        labelled += !ann.label.empty();
    }
    db.exec("COMMIT");
    if (unknown)
        rep.log("warning", std::to_string(unknown) + " label row(s) name no item of " + o.names + ", e.g. '" +
                               example + "' (names are matched exactly as written)");
    return labelled;
}

} // namespace vislint::pipeline
