// Scan step 3a: the kNN graph of the embedded images. Built from scratch on the first scan, and
// after that updated in place (index/graph_update.h): a re-scan adds the new and re-analysed
// images' vectors to the saved index with its trained quantizer and PCA, retires the positions
// of removed and re-analysed ones, and searches only the rows that changed.
//
// Rebuilt from scratch instead when: there is no saved state, or it is of another k, --index-dim,
// model or analysis; the graph file, the index and the database disagree (a crash between their
// writes); or the positions retired plus those added since the build pass kDriftLimit of the
// built ones (the quantizer and PCA were trained on the old data, and retired vectors still
// cost search time).
#include <filesystem>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "common/fault.h"
#include "index/graph_update.h"
#include "index/knn_index.h"
#include "pipeline/scan_steps.h"
#include "store/features.h"
#include "store/knn_graph.h"

namespace fs = std::filesystem;

namespace vislint::pipeline {
namespace {

constexpr double kDriftLimit = 0.10;

struct KnnState {
    int k = 0;
    int index_dim = 0;
    int64_t positions = 0; // rows of the graph = vectors in the index
    int64_t built = 0;     // vectors at the last full build
    int64_t added = 0;     // positions added since
    uint64_t generation = 0;
    std::string signature; // analysis signature of the vectors
};

KnnState read_state(store::Db& db) {
    KnnState s;
    const std::string text = db.meta("knn_state");
    if (text.empty()) return s;
    try {
        const auto j = nlohmann::json::parse(text);
        s.k = j.at("k").get<int>();
        s.index_dim = j.at("index_dim").get<int>();
        s.positions = j.at("positions").get<int64_t>();
        s.built = j.at("built").get<int64_t>();
        s.added = j.at("added").get<int64_t>();
        s.generation = j.at("generation").get<uint64_t>();
        s.signature = j.at("signature").get<std::string>();
    } catch (const std::exception&) {
        return KnnState{};
    }
    return s;
}

void write_state(store::Db& db, const KnnState& s) {
    db.set_meta("knn_state", nlohmann::json{{"k", s.k},
                                            {"index_dim", s.index_dim},
                                            {"positions", s.positions},
                                            {"built", s.built},
                                            {"added", s.added},
                                            {"generation", s.generation},
                                            {"signature", s.signature}}
                                 .dump());
}

uint64_t new_generation(uint64_t old) {
    std::random_device rd;
    uint64_t g = (uint64_t(rd()) << 32) ^ rd();
    return g == old ? g + 1 : g;
}

// Vectors by index position from the memory-mapped features file; positions whose image is
// gone (image id -1) read as zeros (they are retired: only ever re-scored, then skipped).
index::RowSource position_rows(const store::FeatureReader& features, const std::vector<int64_t>& pos_image) {
    return [&features, &pos_image](const int64_t* pos, int64_t count, float* out) {
        const int d = features.dim();
        std::vector<int64_t> buf(static_cast<size_t>(count));
        bool all = true;
        for (int64_t i = 0; i < count; ++i) {
            buf[size_t(i)] = pos_image[size_t(pos[i])];
            all = all && buf[size_t(i)] >= 0;
        }
        if (all) return features.read(buf.data(), count, out);
        for (int64_t i = 0; i < count; ++i) {
            if (buf[size_t(i)] >= 0) features.read(&buf[size_t(i)], 1, out + i * d);
            else std::fill_n(out + i * d, d, 0.f);
        }
    };
}

index::IndexOptions index_options(const ScanOptions& o, int threads) {
    index::IndexOptions iopt;
    iopt.threads = threads;
    if (o.index_dim == 0) {
        iopt.reduce_dim = 0;
    } else if (o.index_dim > 0) {
        iopt.reduce_dim = o.index_dim;
        iopt.reduce_min = 0;
    }
    return iopt;
}

} // namespace

Embedded knn_graph(store::Db& db, const ScanOptions& o, const std::vector<graph::DupItem>& items,
                   const std::vector<bool>& embedded, int threads, Reporter& rep,
                   std::map<std::string, double>* timings) {
    Embedded e;
    const std::string index_path = (fs::path(o.work_dir) / kIndexName).string();
    const std::string graph_path = (fs::path(o.work_dir) / store::kGraphName).string();
    std::unordered_map<int64_t, size_t> item_of; // image id -> position in `items`, embedded only
    for (size_t i = 0; i < items.size(); ++i)
        if (embedded[i]) item_of.emplace(items[i].id, i);
    if (item_of.empty()) {
        db.exec("DELETE FROM embedding_index");
        db.exec("DELETE FROM meta WHERE key = 'knn_state'");
        fs::remove(index_path);
        fs::remove(graph_path);
        return e;
    }
    const int k_want = std::min<int>(o.k, int(item_of.size()) - 1);
    // What the vectors are: in the embeddings-only mode the analysis signature names the input
    // files, which change when rows are added; the import keeps the rows it did not change
    // (their image rows stay derived), so the saved index stays valid for those.
    const std::string signature = embeddings_only(o) ? std::string("vislint ") + VISLINT_VERSION + "; embeddings"
                                                     : db.meta("analysis_signature");
    const store::FeatureReader features((fs::path(o.work_dir) / store::kFeaturesName).string());
    // Between batches the mapped rows read so far are let go (features.release_pages()), so the
    // scan's RSS counts what it holds, not the whole file it streamed through.
    auto progress = [&](const char* stage, uint64_t done, uint64_t total) {
        fault_point("knn");
        features.release_pages();
        return rep.report(stage, done, total);
    };
    const index::IndexOptions iopt = index_options(o, threads);

    // Try the update: the saved state, graph and index must agree with each other and with this
    // scan's options, and the change must be small.
    KnnState st = read_state(db);
    std::vector<int64_t> pos_image; // image id per position, -1 = retired
    std::optional<index::KnnIndex> idx;
    store::SavedGraph saved;
    std::vector<int64_t> fresh; // image ids to add, in id order
    std::vector<int64_t> newly_retired;
    bool update = st.k == k_want && k_want > 0 && st.index_dim == o.index_dim && st.signature == signature &&
                  st.positions > 0 && fs::exists(index_path) && store::load_graph(graph_path, &saved) &&
                  saved.generation == st.generation && saved.n == st.positions && saved.k == st.k;
    if (update) {
        pos_image.assign(size_t(st.positions), -1);
        store::Stmt s(db.handle(), "SELECT pos, image_id FROM embedding_index");
        while (s.step()) {
            const int64_t p = s.int64(0);
            if (p < 0 || p >= st.positions) {
                update = false;
                break;
            }
            pos_image[size_t(p)] = s.int64(1);
        }
    }
    int64_t live_count = 0;
    if (update) {
        std::unordered_set<int64_t> placed; // image ids already at a live position
        for (int64_t p = 0; p < st.positions; ++p) {
            const int64_t id = pos_image[size_t(p)];
            if (id < 0) continue;
            auto it = item_of.find(id);
            if (it == item_of.end() || !items[it->second].derived) {
                newly_retired.push_back(p);
                continue;
            }
            placed.insert(id);
            ++live_count;
        }
        for (const auto& it : items)
            if (item_of.count(it.id) && !placed.count(it.id)) fresh.push_back(it.id);
        const int64_t retired = st.positions - live_count;
        update = double(retired + st.added + int64_t(fresh.size())) <= kDriftLimit * double(st.built);
        if (!update)
            rep.log("info", "kNN index: " + std::to_string(retired) + " retired and " +
                                std::to_string(st.added + int64_t(fresh.size())) + " added positions since its build of " +
                                std::to_string(st.built) + " pass the " + std::to_string(int(kDriftLimit * 100)) +
                                " % limit: rebuilding it");
    }
    if (update) {
        index::IndexOptions lopt = iopt;
        lopt.map_lists = false; // read, so that vectors can be added
        try {
            idx = index::KnnIndex::load(index_path, lopt);
        } catch (const Error& err) {
            rep.log("warning", std::string("kNN index unreadable, rebuilding it: ") + err.what());
        }
        update = idx && idx->size() == st.positions && idx->dim() == features.dim();
    }

    index::KnnGraph g;
    if (update) {
        g.n = saved.n;
        g.k = saved.k;
        g.ids = std::move(saved.ids);
        g.sims = std::move(saved.sims);
    }
    if (update && fresh.empty() && newly_retired.empty()) {
        e.description = idx->description() + "; unchanged"; // the saved graph is the graph
    } else if (update) {
        auto t1 = Clock::now();
        for (int64_t p : newly_retired) pos_image[size_t(p)] = -1;
        const int64_t first_new = st.positions;
        for (int64_t id : fresh) pos_image.push_back(id);
        const index::RowSource rows = position_rows(features, pos_image);
        if (!fresh.empty()) idx->add(rows, int64_t(fresh.size()), progress);
        (*timings)["knn_add"] = seconds_since(t1);
        auto t2 = Clock::now();
        std::vector<bool> live(pos_image.size());
        for (size_t p = 0; p < live.size(); ++p) live[p] = pos_image[p] >= 0;
        const index::GraphUpdateStats us = index::update_graph(*idx, rows, live, &g, progress);
        (*timings)["knn_update"] = seconds_since(t2);
        fault_point("knn");
        if (!fresh.empty()) idx->save(index_path);
        st.positions = int64_t(pos_image.size());
        st.added += int64_t(fresh.size());
        st.generation = new_generation(st.generation);
        store::save_graph(graph_path, st.generation, g.n, g.k, g.ids.data(), g.sims.data());
        fault_point("knn_saved"); // the files are newer than the database until it commits
        store::Stmt del(db.handle(), "DELETE FROM embedding_index WHERE pos = ?");
        for (int64_t p : newly_retired) del.bind(1, p).run();
        store::Stmt ins(db.handle(), "INSERT INTO embedding_index(pos, image_id) VALUES(?, ?)");
        for (size_t i = 0; i < fresh.size(); ++i) ins.bind(1, first_new + int64_t(i)).bind(2, fresh[i]).run();
        write_state(db, st);
        e.description = idx->description() + "; updated: " + std::to_string(us.added) + " added, " +
                        std::to_string(newly_retired.size()) + " retired, " + std::to_string(us.researched) +
                        " rows searched again, " + std::to_string(us.entered) + " rows entered";
    } else {
        // Full build: positions in image id order.
        pos_image.clear();
        for (const auto& it : items)
            if (item_of.count(it.id)) pos_image.push_back(it.id);
        const index::RowSource rows = position_rows(features, pos_image);
        auto t1 = Clock::now();
        index::KnnIndex built = index::KnnIndex::build(rows, int64_t(pos_image.size()), features.dim(), iopt, progress);
        (*timings)["knn_build"] = seconds_since(t1);
        auto t2 = Clock::now();
        if (k_want > 0) g = built.self_graph(rows, k_want, progress);
        (*timings)["knn_graph"] = seconds_since(t2);
        fault_point("knn");
        built.save(index_path);
        e.description = built.description();
        db.exec("DELETE FROM embedding_index");
        store::Stmt ins(db.handle(), "INSERT INTO embedding_index(pos, image_id) VALUES(?, ?)");
        for (size_t p = 0; p < pos_image.size(); ++p) ins.bind(1, int64_t(p)).bind(2, pos_image[p]).run();
        if (k_want > 0) {
            const uint64_t old_generation = st.generation;
            st = KnnState{};
            st.k = k_want;
            st.index_dim = o.index_dim;
            st.positions = st.built = int64_t(pos_image.size());
            st.generation = new_generation(old_generation);
            st.signature = signature;
            store::save_graph(graph_path, st.generation, g.n, g.k, g.ids.data(), g.sims.data());
            write_state(db, st);
        } else {
            fs::remove(graph_path);
            db.exec("DELETE FROM meta WHERE key = 'knn_state'");
        }
    }
    // `vislint similar` refuses an index built under another analysis (model, input size).
    db.set_meta("index_signature", signature);

    // The findings work on the live positions, renumbered densely in position order (after a
    // full build that is every position: the graph is moved, not copied).
    std::vector<int64_t> dense(pos_image.size(), -1);
    for (size_t p = 0; p < pos_image.size(); ++p) {
        if (pos_image[p] < 0) continue;
        dense[p] = int64_t(e.positions.size());
        e.positions.push_back(item_of.at(pos_image[p]));
    }
    e.k = g.k;
    if (e.k > 0 && e.positions.size() == pos_image.size()) {
        e.ids = std::move(g.ids);
        e.sims = std::move(g.sims);
    } else if (e.k > 0) {
        e.ids.reserve(e.positions.size() * size_t(e.k));
        e.sims.reserve(e.positions.size() * size_t(e.k));
        for (size_t p = 0; p < pos_image.size(); ++p) {
            if (pos_image[p] < 0) continue;
            for (int j = 0; j < e.k; ++j) {
                const int64_t nb = g.ids[p * size_t(e.k) + size_t(j)];
                e.ids.push_back(nb >= 0 ? dense[size_t(nb)] : -1);
                e.sims.push_back(g.sims[p * size_t(e.k) + size_t(j)]);
            }
        }
        std::vector<int64_t>().swap(g.ids);
        std::vector<float>().swap(g.sims);
    }
    return e;
}

} // namespace vislint::pipeline
