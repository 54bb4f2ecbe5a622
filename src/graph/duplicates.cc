#include "graph/duplicates.h"

#include <algorithm>
#include <numeric>
#include <tuple>

#include "common/assert.h"
#include "graph/union_find.h"
#include "hash/hamming_index.h"

namespace vislint::graph {

namespace {

// Item id -> position in `items`, by binary search over (id, position) sorted by id: 16 bytes
// per item and no allocation per entry (a hash map of 1 M ids was a second of each re-scan).
// The scan's items come in id order, so the sort is usually a check.
class IdIndex {
public:
    static constexpr size_t kNone = SIZE_MAX;
    explicit IdIndex(const std::vector<DupItem>& items) : by_id_(items.size()) {
        for (size_t i = 0; i < items.size(); ++i) by_id_[i] = {items[i].id, i};
        if (!std::is_sorted(by_id_.begin(), by_id_.end())) std::sort(by_id_.begin(), by_id_.end());
    }
    size_t find(int64_t id) const {
        auto it = std::lower_bound(by_id_.begin(), by_id_.end(), std::make_pair(id, size_t(0)));
        return it != by_id_.end() && it->first == id ? it->second : kNone;
    }

private:
    std::vector<std::pair<int64_t, size_t>> by_id_;
};

} // namespace

ExactResult find_exact(const std::vector<DupItem>& items) {
    const size_t n = items.size();
    UnionFind uf(n);
    // Items with one file hash, then with one pixel hash, are united: by sorting indices (4 bytes
    // each) rather than hashing into a map of 1 M nodes.
    std::vector<uint32_t> order(n);
    auto unite_equal = [&](hash::Hash128 DupItem::*key) {
        std::iota(order.begin(), order.end(), 0u);
        std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
            const hash::Hash128 &x = items[a].*key, &y = items[b].*key;
            return std::tie(x.high, x.low, a) < std::tie(y.high, y.low, b);
        });
        for (size_t j = 1; j < n; ++j)
            if (items[order[j]].*key == items[order[j - 1]].*key) uf.unite(order[j - 1], order[j]);
    };
    VISLINT_ASSERT(n < UINT32_MAX);
    unite_equal(&DupItem::file_hash);
    unite_equal(&DupItem::pixel_hash);
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
    // `items` can be a subset of the items `exact` was found in (the embedded ones): members
    // outside it are left out here.
    const IdIndex ids(items);
    std::vector<int64_t> exact_group(n, -1);
    for (size_t g = 0; g < exact.groups.size(); ++g)
        for (int64_t id : exact.groups[g].members)
            if (const size_t i = ids.find(id); i != IdIndex::kNone) exact_group[i] = int64_t(g);

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
    for (const auto& g : exact.groups) { // exact copies of a near duplicate belong to its group
        size_t first = IdIndex::kNone;
        for (int64_t id : g.members) {
            const size_t i = ids.find(id);
            if (i == IdIndex::kNone) continue;
            if (first == IdIndex::kNone) first = i;
            uf.unite(first, i);
        }
    }
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

namespace {

constexpr size_t kMaxPairsPerCode = 100;

// Position of image `id` in `items` (sorted by id), or -1.
int64_t position_of(const std::vector<DupItem>& items, int64_t id) {
    auto it = std::lower_bound(items.begin(), items.end(), id,
                               [](const DupItem& x, int64_t v) { return x.id < v; });
    return it != items.end() && it->id == id ? int64_t(it - items.begin()) : -1;
}

bool sorted_by_id(const std::vector<DupItem>& items) {
    return std::is_sorted(items.begin(), items.end(),
                          [](const DupItem& x, const DupItem& y) { return x.id < y.id; });
}

} // namespace

HashPairUpdate update_hash_pairs(const std::vector<DupItem>& items, int radius, int dhash_radius,
                                 int threads, const std::vector<HashPair>* saved) {
    VISLINT_ASSERT(sorted_by_id(items));
    std::vector<uint64_t> codes;
    std::vector<size_t> code_item;
    std::vector<int64_t> code_of(items.size(), -1); // item -> index into codes
    for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].hashable) continue;
        code_of[i] = int64_t(codes.size());
        codes.push_back(items[i].phash);
        code_item.push_back(i);
    }
    HashPairUpdate u;
    // Kept: the pairs whose dHashes agree too, and every link between identical pHashes (a
    // group's links to its representative: when it goes, the members are searched again).
    auto to_ids = [&](const std::vector<hash::CodePair>& cp) {
        for (const auto& p : cp) {
            const DupItem &x = items[code_item[p.a]], &y = items[code_item[p.b]];
            if (p.distance > 0 && hash::hamming(x.dhash, y.dhash) > dhash_radius) continue;
            u.pairs.push_back({std::min(x.id, y.id), std::max(x.id, y.id), p.distance});
        }
    };
    if (!saved) {
        u.searched = codes.size();
        to_ids(hash::pairs_within_radius(codes, radius, kMaxPairsPerCode, threads));
        u.added = u.pairs;
    } else {
        // Searched: the changed hashable items, and the unchanged ones that had a pair with an
        // item now gone or changed (their pairs may now go elsewhere: to a new representative of
        // identical codes, or to a pair the cap had left out). The search recomputes every pair
        // of every item sharing a code with those; the saved pairs of the rest are kept.
        auto live = [&](int64_t id) -> int64_t { // index into codes of an unchanged item, or -1
            const int64_t p = position_of(items, id);
            return p >= 0 && items[size_t(p)].derived ? code_of[size_t(p)] : -1;
        };
        std::vector<uint32_t> queries;
        for (size_t i = 0; i < items.size(); ++i)
            if (code_of[i] >= 0 && !items[i].derived) queries.push_back(uint32_t(code_of[i]));
        std::vector<std::pair<int64_t, int64_t>> ends(saved->size()); // live() of each pair's ends
        for (size_t i = 0; i < saved->size(); ++i) {
            ends[i] = {live((*saved)[i].a), live((*saved)[i].b)};
            const auto [ca, cb] = ends[i];
            if (ca >= 0 && cb < 0) queries.push_back(uint32_t(ca));
            if (cb >= 0 && ca < 0) queries.push_back(uint32_t(cb));
        }
        std::vector<uint32_t> members;
        const std::vector<hash::CodePair> found =
            hash::pairs_of_queries(codes, queries, radius, kMaxPairsPerCode, threads, &members);
        u.searched = members.size();
        std::vector<bool> recomputed(codes.size(), false);
        for (uint32_t c : members) recomputed[c] = true;
        for (size_t i = 0; i < saved->size(); ++i) {
            const auto [ca, cb] = ends[i];
            const bool keep = ca >= 0 && cb >= 0 && !recomputed[size_t(ca)] && !recomputed[size_t(cb)];
            (keep ? u.pairs : u.dropped).push_back((*saved)[i]);
        }
        const size_t kept = u.pairs.size();
        to_ids(found);
        u.added.assign(u.pairs.begin() + long(kept), u.pairs.end());
    }
    std::sort(u.pairs.begin(), u.pairs.end(), [](const HashPair& x, const HashPair& y) {
        return x.a != y.a ? x.a < y.a : x.b < y.b;
    });
    return u;
}

std::vector<IndexPair> hash_index_pairs(const std::vector<DupItem>& items,
                                        const std::vector<HashPair>& pairs, int radius,
                                        int dhash_radius) {
    const IdIndex ids(items);
    std::vector<IndexPair> out;
    for (const HashPair& p : pairs) {
        const size_t a = ids.find(p.a), b = ids.find(p.b);
        if (a == IdIndex::kNone || b == IdIndex::kNone) continue;
        const int dd = hash::hamming(items[a].dhash, items[b].dhash);
        if (dd > dhash_radius) continue;
        out.push_back({std::min(a, b), std::max(a, b), 1.0 - p.distance / 64.0,
                       "pHash distance " + std::to_string(p.distance) + " <= " + std::to_string(radius) +
                           ", dHash distance " + std::to_string(dd) + " <= " + std::to_string(dhash_radius),
                       1.0 - radius / 64.0});
    }
    return out;
}

} // namespace vislint::graph
