// Scan step 1: which items to analyse, which rows to reuse and which to remove.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

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
    struct Known {
        int64_t id, size, mtime;
        std::string box;
    };
    std::unordered_map<std::string, Known> known;
    known.reserve(items.size());
    int64_t next_id = 0;
    std::vector<int64_t> embedded;
    {
        store::Stmt s(db.handle(), "SELECT id, path, file_size, mtime_ns, box, has_embedding FROM images");
        while (s.step()) {
            known[s.text(1)] = {s.int64(0), s.is_null(2) ? -1 : s.int64(2), s.int64(3), s.text(4)};
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
        store::ImageRecord r;
        r.path = items[i].path;
        r.source = items[i].source;
        r.box = items[i].box;
        struct stat st;
        if (::stat((r.source.empty() ? r.path : r.source).c_str(), &st) == 0) {
            r.file_size = st.st_size;
            r.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        }
        auto it = known.find(r.path);
        if (it != known.end()) {
            r.id = it->second.id;
            bool unchanged = reuse && r.file_size >= 0 && it->second.size == r.file_size &&
                             it->second.mtime == r.mtime_ns && it->second.box == r.box &&
                             !bad.count(r.id);
            known.erase(it);
            if (unchanged) {
                ++p.reused;
                continue;
            }
        } else {
            r.id = next_id++;
        }
        p.todo.push_back(std::move(r));
    }
    for (const auto& [path, k] : known) p.removed_ids.push_back(k.id);
    return p;
}

} // namespace vislint::pipeline
