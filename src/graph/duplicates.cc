#include "graph/duplicates.h"

#include <algorithm>
#include <tuple>
#include <unordered_map>

#include "graph/union_find.h"
#include "hash/hamming_index.h"

namespace vislint::graph {
namespace {

struct HashKey {
    size_t operator()(const hash::Hash128& h) const { return size_t(h.low ^ (h.high * 0x9E3779B97F4A7C15ull)); }
};

} // namespace

ExactResult find_exact(const std::vector<DupItem>& items) {
    const size_t n = items.size();
    UnionFind uf(n);
    std::unordered_map<hash::Hash128, size_t, HashKey> by_file, by_pixels;
    for (size_t i = 0; i < n; ++i) {
        auto [f, fnew] = by_file.emplace(items[i].file_hash, i);
        if (!fnew) uf.unite(f->second, i);
        auto [p, pnew] = by_pixels.emplace(items[i].pixel_hash, i);
        if (!pnew) uf.unite(p->second, i);
    }
    ExactResult out;
    for (const auto& comp : components(uf)) {
        DupGroup g;
        g.kind = "exact";
        const DupItem& keeper = items[comp.front()];
        g.keeper = keeper.id;
        for (size_t i : comp) {
            g.members.push_back(items[i].id);
            if (i == comp.front()) continue;
            bool same_bytes = items[i].file_hash == keeper.file_hash;
            out.pairs.push_back({items[i].id, keeper.id, 1.0, 0,
                                 same_bytes ? "identical bytes (xxh3-128 " + keeper.file_hash.hex() + ")"
                                            : "identical decoded pixels, different encoding"});
        }
        out.groups.push_back(std::move(g));
    }
    return out;
}

NearResult group_near_pairs(const std::vector<DupItem>& items, const ExactResult& exact,
                            const std::vector<IndexPair>& pairs) {
    const size_t n = items.size();
    std::unordered_map<int64_t, size_t> index_of;
    for (size_t i = 0; i < n; ++i) index_of[items[i].id] = i;
    std::vector<int64_t> exact_group(n, -1);
    for (size_t g = 0; g < exact.groups.size(); ++g)
        for (int64_t id : exact.groups[g].members) exact_group[index_of[id]] = int64_t(g);

    NearResult out;
    UnionFind uf(n);
    std::vector<bool> has_near(n, false);
    std::vector<double> centrality(n, 0.0); // sum of evidence over a member's pairs
    for (const auto& p : pairs) {
        if (exact_group[p.a] >= 0 && exact_group[p.a] == exact_group[p.b]) continue;
        uf.unite(p.a, p.b);
        has_near[p.a] = has_near[p.b] = true;
        centrality[p.a] += evidence_margin(p.score, p.threshold);
        centrality[p.b] += evidence_margin(p.score, p.threshold);
        DupPair d;
        d.a = items[std::min(p.a, p.b)].id;
        d.b = items[std::max(p.a, p.b)].id;
        d.score = p.score;
        d.detail = p.detail;
        d.threshold = p.threshold;
        out.pairs.push_back(std::move(d));
    }
    for (const auto& g : exact.groups) // exact copies of a near duplicate belong to its group
        for (int64_t id : g.members) uf.unite(index_of[g.members.front()], index_of[id]);
    for (const auto& comp : components(uf)) {
        if (std::none_of(comp.begin(), comp.end(), [&](size_t i) { return has_near[i]; })) continue;
        DupGroup g;
        g.kind = "near";
        size_t best = comp.front();
        for (size_t i : comp) {
            g.members.push_back(items[i].id);
            const DupItem &c = items[i], &k = items[best];
            // Largest resolution; then the most central member (copies derive from their
            // original, so it is the one closest to all of them: a noisy copy is a bigger PNG
            // but further from the rest); then the largest file.
            if (std::make_tuple(c.width * c.height, centrality[i], c.file_size) >
                std::make_tuple(k.width * k.height, centrality[best], k.file_size))
                best = i;
        }
        g.keeper = items[best].id;
        out.groups.push_back(std::move(g));
    }
    return out;
}

NearResult find_near_by_hash(const std::vector<DupItem>& items, const ExactResult& exact,
                             int radius, int dhash_radius, int threads) {
    return group_near_pairs(items, exact, hash_pairs(items, radius, dhash_radius, threads));
}

std::vector<IndexPair> hash_pairs(const std::vector<DupItem>& items, int radius, int dhash_radius,
                                  int threads) {
    std::vector<uint64_t> codes;
    std::vector<size_t> code_item;
    for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].hashable) continue;
        codes.push_back(items[i].phash);
        code_item.push_back(i);
    }
    std::vector<IndexPair> pairs;
    for (const auto& p : hash::pairs_within_radius(codes, radius, 100, threads)) {
        size_t a = code_item[p.a], b = code_item[p.b];
        const int dd = hash::hamming(items[a].dhash, items[b].dhash);
        if (dd > dhash_radius) continue;
        pairs.push_back({a, b, 1.0 - p.distance / 64.0,
                         "pHash distance " + std::to_string(p.distance) + " <= " + std::to_string(radius) +
                             ", dHash distance " + std::to_string(dd) + " <= " + std::to_string(dhash_radius),
                         1.0 - radius / 64.0});
    }
    return pairs;
}

} // namespace vislint::graph
