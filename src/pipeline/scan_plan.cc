// Scan step 1: which items to analyse, which rows to reuse and which to remove.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <unordered_set>

#include "common/string_index.h"
#include "pipeline/scan_steps.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::pipeline {

std::string analysis_signature(const ScanOptions& o, const embed::ModelSpec* model) {
    // The decoder revision: bumped whenever a file may now get another status or other pixels
    // (2: independent decodes, libpng, CMYK via TurboJPEG, animated WebP, memory limits), so
    // rows of an older decoder are never reused.
    constexpr int kDecoderRevision = 2;
    // The same for the stats and perceptual hashes (2: dhash via the 32 x 32 thumbnail).
    constexpr int kHashRevision = 2;
    return std::string("vislint ") + VISLINT_VERSION + "; decoder " + std::to_string(kDecoderRevision) +
           "; hashes " + std::to_string(kHashRevision) + "; working_side " +
           std::to_string(kWorkingSide) + "; max_pixels " + std::to_string(o.max_pixels) +
           "; max_image_memory_mb " + std::to_string(o.max_image_memory_mb) +
           "; model " + (model ? model->id : "none");
}

void check_work_dir(const ScanOptions& o) {
    std::error_code ec;
    fs::path work = fs::weakly_canonical(fs::absolute(o.work_dir), ec);
    for (const std::string& in : o.inputs) {
        fs::path root = fs::weakly_canonical(fs::absolute(in), ec);
        if (!fs::is_directory(root)) continue;
        auto [w, r] = std::mismatch(work.begin(), work.end(), root.begin(), root.end());
        if (r == root.end())
            throw Error("work dir " + o.work_dir + " is inside input folder " + in +
                        "; vislint never writes into its inputs: choose a work dir outside them");
    }
    fs::create_directories(o.work_dir, ec);
    if (ec || !fs::is_directory(o.work_dir))
        throw Error("cannot create work dir " + o.work_dir + ": " + ec.message());
}

// `features_path`: with a model, the features file whose rows reused images must have intact.
Planned plan(store::Db& db, const std::vector<pipeline::Item>& items, bool reuse,
             const std::string& features_path, Reporter& rep) {
    // The stored rows by path (with the box: a crop of another box is another item). At 1 M
    // images this lookup is a fixed cost of every re-scan, so paths go to one arena
    // (StringIndex), not to a node-based map of strings.
    struct Known {
        int64_t id, size, mtime;
        uint32_t box; // in `boxes`
        bool matched;
    };
    std::vector<Known> known;
    StringIndex paths(items.size()), boxes;
    int64_t next_id = 0;
    std::vector<int64_t> embedded;
    {
        store::Stmt s(db.handle(), "SELECT id, path, file_size, mtime_ns, box, has_embedding FROM images");
        while (s.step()) {
            if (!paths.insert(s.view(1)).second) // path is UNIQUE: only outside damage gets here
                store::throw_damaged(sqlite3_db_filename(db.handle(), "main"), "two rows have the path " + s.text(1));
            known.push_back({s.int64(0), s.is_null(2) ? -1 : s.int64(2), s.int64(3), boxes.insert(s.view(4)).first,
                             false});
            next_id = std::max(next_id, s.int64(0) + 1);
            if (s.int64(5) != 0) embedded.push_back(s.int64(0));
        }
    }
    // Commits follow the vectors' fdatasync, so a bad row here means damage from outside (or a
    // crash of an older version): re-analyse those images rather than trust the row.
    std::unordered_set<int64_t> bad;
    if (reuse && !features_path.empty()) {
        for (int64_t id : store::bad_feature_rows(features_path, embedded)) bad.insert(id);
        if (!bad.empty())
            rep.log("warning", std::to_string(bad.size()) + " embedding(s) in " + features_path +
                                   " are damaged or missing: those images are analysed again");
    }
    Planned p;
    for (size_t i = 0; i < items.size(); ++i) {
        if (!rep.report("index", i + 1, items.size())) throw Cancelled("cancelled while indexing");
        const pipeline::Item& item = items[i];
        io::FileStat st = item.stat; // from discovery, else stat'ed here
        if (!st.known) {
            struct stat s;
            if (::stat((item.source.empty() ? item.path : item.source).c_str(), &s) == 0)
                st = {true, int64_t(s.st_size), int64_t(s.st_mtim.tv_sec) * 1'000'000'000 + s.st_mtim.tv_nsec};
        }
        int64_t id;
        const uint32_t k = paths.find(item.path);
        if (k != StringIndex::kNone && !known[k].matched) {
            Known& row = known[k];
            row.matched = true;
            id = row.id;
            const bool unchanged = reuse && st.size >= 0 && row.size == st.size && row.mtime == st.mtime_ns &&
                                   boxes.at(row.box) == item.box && !bad.count(id);
            if (unchanged) {
                ++p.reused;
                continue;
            }
        } else {
            id = next_id++;
        }
        store::ImageRecord r;
        r.id = id;
        r.path = item.path;
        r.source = item.source;
        r.box = item.box;
        if (st.size >= 0) {
            r.file_size = st.size;
            r.mtime_ns = st.mtime_ns;
        }
        p.todo.push_back(std::move(r));
    }
    for (const Known& row : known)
        if (!row.matched) p.removed_ids.push_back(row.id);
    return p;
}

} // namespace vislint::pipeline
