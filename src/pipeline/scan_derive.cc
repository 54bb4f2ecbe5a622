// Scan step 3: every issue row, duplicate group, cluster and label vote, re-derived from the
// images table (and the kNN graph of the embeddings) on every scan.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <future>
#include <unordered_map>

#include "common/fault.h"
#include "common/median.h"
#include "graph/duplicates.h"
#include "graph/labels.h"
#include "graph/similarity.h"
#include "hash/small_copy.h"
#include "index/knn_index.h"
#include "pipeline/scan_steps.h"
#include "quality/flags.h"
#include "store/features.h"
#include "store/issue_writer.h"
#include "store/overview.h"

namespace fs = std::filesystem;

namespace vislint::pipeline {
namespace {

// The perceptual-hash pairs, kept in the hash_pairs table between scans: only the new and
// changed images are searched (graph::update_hash_pairs), unless a radius changed or a quarter
// of the images did. Written as a delta inside the derivation's transaction.
graph::HashPairUpdate saved_hash_pairs(store::Db& db, const std::vector<graph::DupItem>& items, int radius,
                                       int dhash_radius, int threads, std::map<std::string, double>* timings) {
    auto t0 = Clock::now();
    const std::string key = "radius " + std::to_string(radius) + " dhash " + std::to_string(dhash_radius);
    size_t changed = 0, hashable = 0;
    for (const auto& it : items)
        if (it.hashable) {
            ++hashable;
            changed += !it.derived;
        }
    std::vector<graph::HashPair> saved;
    const bool incremental = db.meta("hash_pairs") == key && changed * 4 <= hashable;
    if (incremental) {
        store::Stmt s(db.handle(), "SELECT a, b, distance FROM hash_pairs");
        while (s.step()) saved.push_back({s.int64(0), s.int64(1), int(s.int64(2))});
    }
    graph::HashPairUpdate u =
        graph::update_hash_pairs(items, radius, dhash_radius, threads, incremental ? &saved : nullptr);
    if (!incremental) db.exec("DELETE FROM hash_pairs");
    store::Stmt del(db.handle(), "DELETE FROM hash_pairs WHERE a = ? AND b = ?");
    for (const auto& p : u.dropped) del.bind(1, p.a).bind(2, p.b).run();
    store::Stmt ins(db.handle(), "INSERT INTO hash_pairs(a, b, distance) VALUES(?, ?, ?)");
    for (const auto& p : u.added) ins.bind(1, p.a).bind(2, p.b).bind(3, int64_t(p.distance)).run();
    db.set_meta("hash_pairs", key);
    (*timings)[incremental ? "hash_pairs_update" : "hash_pairs"] = seconds_since(t0);
    return u;
}

// label_issue rows from the kNN vote; every labelled image gets its score and the vote's winner
// in `labels`, and the flagged ones their voters in `label_votes`.
template <typename Add>
void find_label_issues(store::Db& db, const graph::Neighbours& nn, const std::vector<graph::DupItem>& sub,
                       const std::vector<std::string>& label_of, const Thresholds& t, Add&& add) {
    std::unordered_map<std::string, int> class_of;
    std::vector<std::string> names;
    std::vector<int> labels(sub.size(), -1);
    for (size_t p = 0; p < sub.size(); ++p) {
        size_t id = size_t(sub[p].id);
        if (id >= label_of.size() || label_of[id].empty()) continue;
        auto [it, inserted] = class_of.emplace(label_of[id], int(names.size()));
        if (inserted) names.push_back(label_of[id]);
        labels[p] = it->second;
    }
    if (names.size() < 2) return; // one class: nothing to disagree with
    store::Stmt upd(db.handle(), "UPDATE labels SET label_score = ?, suggested = ? WHERE image_id = ?");
    store::Stmt votes(db.handle(), "INSERT INTO label_votes(image_id, rank, neighbour_id) VALUES(?,?,?)");
    for (const graph::LabelVote& v : graph::vote_labels(nn, labels, int(names.size()))) {
        const int64_t id = sub[v.position].id;
        upd.bind(1, v.score).bind(2, names[size_t(v.suggested)]).bind(3, id).run();
        if (v.suggested == v.given || v.score < t.label_issue) continue;
        int64_t other = -1;
        for (size_t q : v.voters)
            if (labels[q] == v.suggested) {
                other = sub[q].id;
                break;
            }
        add("label_issue", id, other >= 0 ? &other : nullptr, v.score, &t.label_issue, names[size_t(v.suggested)]);
        for (size_t r = 0; r < v.voters.size(); ++r)
            votes.bind(1, id).bind(2, int64_t(r)).bind(3, sub[v.voters[r]].id).run();
    }
}

// More near-duplicate pairs than images usually means the rules cannot tell look-alikes from
// copies on this data (on Fashion-MNIST's 28-px silhouettes they paired 83 k of 75 M pairs, 6.8
// per image; on clip art and photos it is a few per hundred images). Say so, and how to tighten.
void warn_if_not_discriminative(size_t pairs, size_t images, bool hash_only, Reporter& rep) {
    if (images < 100 || pairs < images) return;
    char msg[512];
    std::snprintf(msg, sizeof(msg),
                  "near_duplicate: %zu pairs among %zu images (%.1f per image). That many usually means "
                  "the rule cannot tell look-alikes from copies on this data (small, simple or very uniform "
                  "images): look at a few pairs, and if they are not copies re-scan into the same work dir "
                  "with stricter thresholds, e.g. %s--hash-radius 4 --dhash-radius 4 (no image is decoded again)",
                  pairs, images, double(pairs) / double(images),
                  hash_only ? "" : "--near-duplicate-threshold 0.95 ");
    rep.log("warning", msg);
}

// The second test of candidate near pairs (graph::PairCheck): whether two images are copies.
// - Two small images (longer side <= 64 px) must be copies pixel for pixel
//   (hash/small_copy.h): a look-alike is dropped whatever its similarity. Their pixels are read
//   by id when a pair needs them and cached (at most kMaxCached, up to 4 KB each; the cache
//   starts again when full).
// - Other images are copies when a transformed view of one (hash::variant_hashes: mirror image,
//   centre crop, small rotation) hashes like the other; otherwise the test does not apply.
class CopyCheck {
public:
    CopyCheck(store::Db& db, const Thresholds& t) : reader_(db), t_(t) {}

    // The image's views, kept by id.
    void add_views(const store::ImageRecord& r) {
        if (!r.has_pixels || !r.has_variants) return;
        if (size_t(r.id) >= views_.size()) {
            views_.resize(size_t(r.id) + 1);
            has_views_.resize(size_t(r.id) + 1);
        }
        views_[size_t(r.id)] = r.variants;
        has_views_[size_t(r.id)] = true;
    }
    // The check over `items` (positions of pairs index it).
    graph::PairCheck over(const std::vector<graph::DupItem>& items) {
        return [this, &items](graph::IndexPair* p, bool confirm) {
            return verdict(items[p->a], items[p->b], confirm, p);
        };
    }
    size_t small_checked() const { return small_checked_; }
    size_t small_dropped() const { return small_dropped_; }

private:
    static constexpr size_t kMaxCached = 1 << 16; // <= 256 MB

    static bool small(const graph::DupItem& it) { return hash::is_small_image(it.width, it.height); }
    const hash::SmallThumb* thumb(int64_t id) {
        auto found = cache_.find(id);
        if (found != cache_.end()) return &found->second;
        if (cache_.size() >= kMaxCached) cache_.clear();
        hash::SmallThumb t;
        reader_.get(id, &t);
        return &cache_.emplace(id, std::move(t)).first->second;
    }
    const hash::VariantHashes* views(int64_t id) const {
        return size_t(id) < views_.size() && has_views_[size_t(id)] ? &views_[size_t(id)] : nullptr;
    }
    graph::Verdict verdict(const graph::DupItem& a, const graph::DupItem& b, bool confirm, graph::IndexPair* p) {
        char detail[128];
        if (small(a) && small(b) && t_.small_copy > 0) {
            const hash::SmallThumb* ta = thumb(a.id);
            const hash::SmallThumb* tb = thumb(b.id);
            if (ta->empty() || tb->empty()) return graph::Verdict::kNotApplicable; // damaged row
            ++small_checked_;
            const double r = hash::small_copy_correlation(*ta, *tb);
            if (r < t_.small_copy) {
                ++small_dropped_;
                return graph::Verdict::kNotCopy;
            }
            std::snprintf(detail, sizeof(detail), "; small images: pixel correlation %.4f >= %.4f", r, t_.small_copy);
            p->detail += detail;
            return graph::Verdict::kCopy;
        }
        if (!confirm) return graph::Verdict::kNotApplicable; // a near duplicate by its own rule
        if (!a.hashable || !b.hashable) return graph::Verdict::kNotApplicable; // flat: hashes mean nothing
        const hash::VariantHashes* va = views(a.id);
        const hash::VariantHashes* vb = views(b.id);
        if (!va || !vb) return graph::Verdict::kNotApplicable;
        int distance = 0;
        int v = hash::variant_match(*va, {b.phash, b.dhash}, t_.hash_radius, t_.dhash_radius, &distance);
        if (v < 0) v = hash::variant_match(*vb, {a.phash, a.dhash}, t_.hash_radius, t_.dhash_radius, &distance);
        if (v < 0) return graph::Verdict::kNotApplicable;
        // Which side was transformed is left out: image ids are no part of a row's content.
        std::snprintf(detail, sizeof(detail), "; the %s of one hashes like the other (pHash distance %d <= %d)",
                      hash::variant_name(v), distance, t_.hash_radius);
        p->detail += detail;
        return graph::Verdict::kCopy;
    }

    store::SmallThumbReader reader_;
    const Thresholds& t_;
    std::unordered_map<int64_t, hash::SmallThumb> cache_;
    std::vector<hash::VariantHashes> views_;
    std::vector<bool> has_views_;
    size_t small_checked_ = 0, small_dropped_ = 0;
};

} // namespace

// Rewrites the labels table: label and split of every item of this scan, by image id.
void write_labels(store::Db& db, const std::vector<pipeline::Item>& items) {
    std::unordered_map<std::string, const pipeline::Item*> by_path;
    for (const auto& it : items)
        if (!it.label.empty() || !it.split.empty()) by_path.emplace(it.path, &it);
    if (by_path.empty()) { // nothing to match: no pass over every image row
        db.exec("DELETE FROM labels");
        return;
    }
    db.exec("BEGIN; DELETE FROM labels;");
    store::Stmt sel(db.handle(), "SELECT id, path FROM images");
    store::Stmt ins(db.handle(), "INSERT INTO labels(image_id, label, split) VALUES(?,?,?)");
    while (sel.step()) {
        auto it = by_path.find(sel.text(1));
        if (it == by_path.end()) continue;
        ins.bind(1, sel.int64(0));
        if (it->second->label.empty()) ins.bind_null(2); else ins.bind(2, it->second->label);
        if (it->second->split.empty()) ins.bind_null(3); else ins.bind(3, it->second->split);
        ins.run();
    }
    db.exec("COMMIT");
}

// Re-derives every issue row and duplicate group from the images table.
void derive_issues(store::Db& db, const ScanOptions& o, int threads, Reporter& rep,
                   std::map<std::string, double>* timings, std::string* index_description) {
    auto t0 = Clock::now();
    const Thresholds& t = o.thresholds;

    db.exec("BEGIN");
    db.exec("DELETE FROM duplicate_groups");
    // The histograms' ranges (a pass over the decoded rows, on a read connection: the images
    // table has no uncommitted change) are read while the issue writer loads the stored rows.
    // (std::async: its future joins the thread when destroyed and get() rethrows its error.)
    store::OverviewBuilder overview;
    std::vector<double> areas;
    std::future<void> range_pass = std::async(std::launch::async, [&] {
        store::Db reader(sqlite3_db_filename(db.handle(), "main"), true, false);
        store::Stmt a(reader.handle(), store::OverviewBuilder::kRangeQuery);
        while (a.step()) {
            areas.push_back(double(a.int64(0)) * double(a.int64(1))); // width x height
            overview.range(a);
        }
    });
    // Every row is derived again; only the difference from the stored rows is written.
    store::IssueWriter issues(db);
    range_pass.get();
    auto add = [&](const std::string& type, int64_t id, const int64_t* other, double score,
                   const double* threshold, const std::string& detail) {
        issues.add(type, id, other, score, threshold, detail);
        fault_point("derive");
    };

    // The image rows are streamed, never held: what is kept per image is its DupItem (hashes,
    // size: ~80 bytes), its area (8), whether it has an embedding and its grey flag (1 bit each),
    // and with a model the hashes of its transformed views (128 bytes, CopyCheck).
    // The report's overview is gathered on the way (store/overview.h).
    const double median_area = median(areas);
    std::vector<double>().swap(areas);

    std::vector<graph::DupItem> items;
    std::vector<bool> embedded;
    std::vector<std::pair<int64_t, bool>> grey; // written after the read: the cursor is on images
    size_t unusable = 0;                        // model runs: decoded but no usable embedding
    std::string unusable_example;
    CopyCheck copies(db, t); // the transformed views matter only for kNN candidates
    const bool keep_views = has_vectors(o) && !embeddings_only(o);
    // Rows decoded on the scan's threads (read connections: the images table has no uncommitted
    // change here), handled in id order on this one.
    store::for_each_image(sqlite3_db_filename(db.handle(), "main"), threads, [&](store::ImageRecord&& r) {
        overview.add(r);
        if (keep_views) copies.add_views(r);
        if (!r.status.ok()) {
            add("broken", r.id, nullptr, 1.0, nullptr, r.status.to_string());
            return;
        }
        if (!r.has_embedding && unusable++ == 0) unusable_example = r.path;
        if (r.ext_format != "unknown" && r.ext_format != r.format)
            add("wrong_extension", r.id, nullptr, 1.0, nullptr,
                "content is " + r.format + " but the extension says " + r.ext_format);
        if (r.has_pixels) { // embeddings-only items have a vector and no pixels
            quality::ImageFacts facts{r.width, r.height, r.channels, r.stats};
            // Written only where it changed: rewriting every row would rewrite every page of the
            // table (and the WAL) on each re-scan.
            const bool g = quality::is_grayscale(facts, t);
            if (r.stored_grayscale != int(g)) grey.emplace_back(r.id, g);
            for (const auto& f : quality::quality_flags(facts, t, median_area))
                add(f.type, r.id, nullptr, f.score, &f.threshold, f.detail);
        }
        graph::DupItem it;
        it.id = r.id;
        it.file_hash = r.file_hash;
        it.pixel_hash = r.pixel_hash;
        it.phash = r.phash;
        it.dhash = r.dhash;
        it.hashable = r.stats.contrast >= 1.0; // a flat image's pHash is all zeros
        it.width = r.width;
        it.height = r.height;
        it.file_size = r.file_size;
        it.derived = r.derived;
        items.push_back(it);
        embedded.push_back(r.has_embedding);
    });
    {
        store::Stmt gray(db.handle(), "UPDATE images SET is_grayscale = ? WHERE id = ?");
        for (const auto& [id, g] : grey) gray.bind(1, int64_t(g)).bind(2, id).run();
        std::vector<std::pair<int64_t, bool>>().swap(grey);
    }
    if (o.model.model != "none" && o.embeddings.empty()) {
        // With a model every analysed image gets an embedding unless the model's output for it
        // was all zeros or not finite: say so on every scan (rows are reused silently otherwise).
        if (unusable)
            rep.log("warning", (o.model.model == "default" ? std::string("the default model") : "model " + o.model.model) +
                                   ": no usable embedding (all zeros, NaN or infinity) for " +
                                   std::to_string(unusable) + " image(s), e.g. " + unusable_example +
                                   "; they keep their other checks but are left out of near-duplicate, cluster, "
                                   "outlier and label checks");
    }
    (*timings)["flags"] = seconds_since(t0);
    rep.report("duplicates", 0, 1, true);

    auto t1 = Clock::now();
    store::Stmt grp(db.handle(), "INSERT INTO duplicate_groups(group_id, kind, image_id, is_keeper) VALUES(?,?,?,?)");
    int64_t group_id = 0;
    auto write_groups = [&](const std::vector<graph::DupGroup>& groups) {
        for (const auto& g : groups) {
            for (int64_t id : g.members)
                grp.bind(1, group_id).bind(2, g.kind).bind(3, id).bind(4, int64_t(id == g.keeper)).run();
            ++group_id;
        }
    };
    // Without pixels there are no content hashes to match (they would all be equal).
    graph::ExactResult exact = embeddings_only(o) ? graph::ExactResult{} : graph::find_exact(items);
    const double one = 1.0;
    for (const auto& p : exact.pairs) add("exact_duplicate", p.a, &p.b, p.score, &one, p.detail);
    write_groups(exact.groups);
    (*timings)["exact_duplicates"] = seconds_since(t1);

    auto t2 = Clock::now();
    db.exec("DELETE FROM clusters");
    db.exec("UPDATE images SET outlier_score = NULL, outlier_z = NULL, nn_id = NULL, nn_sim = NULL "
            "WHERE outlier_score IS NOT NULL OR nn_id IS NOT NULL");
    // Labels and splits by image id.
    std::vector<std::string> label_of, split_of;
    {
        store::Stmt ls(db.handle(), "SELECT image_id, label, split FROM labels");
        while (ls.step()) {
            size_t id = size_t(ls.int64(0));
            if (id >= label_of.size()) {
                label_of.resize(id + 1);
                split_of.resize(id + 1);
            }
            label_of[id] = ls.text(1);
            split_of[id] = ls.text(2);
        }
    }
    db.exec("UPDATE labels SET label_score = NULL, suggested = NULL; DELETE FROM label_votes;");
    graph::NearResult near;
    // Without pixels there are no perceptual hashes (embeddings-only items).
    const std::vector<graph::HashPair> hash_pairs =
        embeddings_only(o) ? std::vector<graph::HashPair>{}
                           : saved_hash_pairs(db, items, t.hash_radius, t.dhash_radius, threads, timings).pairs;
    if (!has_vectors(o)) {
        near = graph::group_near_pairs(
            items, exact,
            graph::checked_pairs(graph::hash_index_pairs(items, hash_pairs, t.hash_radius, t.dhash_radius),
                                 copies.over(items)));
        for (const auto& p : near.pairs) add("near_duplicate", p.a, &p.b, p.score, &p.threshold, p.detail);
        write_groups(near.groups);
    } else {
        Embedded e = knn_graph(db, o, items, embedded, threads, rep, timings);
        *index_description = e.description;
        // Findings are computed over the embedded subset, by position in `sub`.
        std::vector<graph::DupItem> sub;
        for (size_t p : e.positions) sub.push_back(items[p]);
        graph::Neighbours nn{int64_t(sub.size()), e.k, e.ids.data(), e.sims.data()};
        // Perceptual-hash matches count too (scored on the hash scale, 1 - pHash distance / 64).
        std::vector<graph::IndexPair> hp = graph::hash_index_pairs(sub, hash_pairs, t.hash_radius, t.dhash_radius);
        graph::SimilarityResult res = graph::analyse_similarity(nn, sub, exact, t, hp, copies.over(sub));
        for (const auto& p : res.near.pairs) add("near_duplicate", p.a, &p.b, p.score, &p.threshold, p.detail);
        write_groups(res.near.groups);
        store::Stmt cl(db.handle(), "INSERT INTO clusters(cluster_id, image_id) VALUES(?, ?)");
        for (size_t c = 0; c < res.clusters.size(); ++c)
            for (int64_t id : res.clusters[c]) cl.bind(1, int64_t(c)).bind(2, id).run();
        store::Stmt iso(db.handle(), "UPDATE images SET outlier_score = ?, outlier_z = ?, nn_id = ?, nn_sim = ? WHERE id = ?");
        for (const auto& s : res.isolation) {
            iso.bind(1, s.score).bind(2, s.z);
            if (s.nearest >= 0) iso.bind(3, sub[size_t(s.nearest)].id).bind(4, double(s.nearest_sim));
            else iso.bind_null(3).bind_null(4);
            iso.bind(5, sub[s.position].id).run();
        }
        for (size_t p : res.outliers) {
            const auto& s = res.isolation[p];
            int64_t other = s.nearest >= 0 ? sub[size_t(s.nearest)].id : -1;
            char detail[160];
            std::snprintf(detail, sizeof(detail),
                          "isolation %.4f (1 - mean similarity to its nearest neighbours), robust z %.1f > %.1f",
                          s.score, s.z, t.outlier_z);
            add("outlier", sub[p].id, other >= 0 ? &other : nullptr, s.score, &res.outlier_threshold, detail);
        }
        if (!label_of.empty()) find_label_issues(db, nn, sub, label_of, t, add);
        near = std::move(res.near);
    }
    (*timings)["similarity"] = seconds_since(t2);
    if (copies.small_dropped())
        rep.log("info", "near_duplicate: " + std::to_string(copies.small_dropped()) + " of " +
                            std::to_string(copies.small_checked()) +
                            " candidate pairs of small images (at most 64 px) are look-alikes, not pixel copies, and "
                            "are not reported (--small-copy-threshold)");
    warn_if_not_discriminative(near.pairs.size(), items.size(), !has_vectors(o), rep);
    if (!split_of.empty()) {
        for (const auto& l : graph::find_leaks(exact, near, split_of))
            add("leak", l.a, &l.b, l.score, &l.threshold, l.detail);
    }
    issues.finish();
    // Every row's hashes and vector are now in the saved pairs and kNN graph.
    db.exec("UPDATE images SET derived = 1 WHERE derived IS NULL");
    db.set_meta("overview", overview.to_json().dump());
    // The checksum follows once this is committed (finish_scan: store::committed_checksum).
    fault_point("commit");
    db.exec("COMMIT");
    rep.report("duplicates", 1, 1, true);
}

} // namespace vislint::pipeline
