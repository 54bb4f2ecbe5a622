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
    // Ids are dense (rows numbered from 0, with the gaps of removed images), so a table by id is
    // the usual case: one load per lookup instead of a binary search over 1 M entries (a re-scan
    // looks up both ends of every saved pair). Sparse ids fall back to the search.
    explicit IdIndex(const std::vector<DupItem>& items) {
        int64_t lo = 0, hi = -1;
        for (const DupItem& it : items) lo = std::min(lo, it.id), hi = std::max(hi, it.id);
        if (lo >= 0 && hi < int64_t(2 * items.size() + 1024)) {
            table_.assign(size_t(hi + 1), kNone);
            for (size_t i = 0; i < items.size(); ++i) table_[size_t(items[i].id)] = i;
            return;
        }
        by_id_.resize(items.size());
        for (size_t i = 0; i < items.size(); ++i) by_id_[i] = {items[i].id, i};
        if (!std::is_sorted(by_id_.begin(), by_id_.end())) std::sort(by_id_.begin(), by_id_.end());
    }
    size_t find(int64_t id) const {
        if (by_id_.empty()) return id >= 0 && size_t(id) < table_.size() ? table_[size_t(id)] : kNone;
        auto it = std::lower_bound(by_id_.begin(), by_id_.end(), std::make_pair(id, size_t(0)));
        return it != by_id_.end() && it->first == id ? it->second : kNone;
    }

private:
    std::vector<size_t> table_;                       // by id, when ids are dense
    std::vector<std::pair<int64_t, size_t>> by_id_;   // sorted, otherwise
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
    // Exact copies are one unit (identical content: a near duplicate of one is a near duplicate
    // of all), named by its first member's index. `items` can be a subset of the items `exact`
    // was found in (the embedded ones): members outside it are left out here.
    const IdIndex ids(items);
    std::vector<size_t> unit(n);
    std::iota(unit.begin(), unit.end(), size_t(0));
    for (const auto& g : exact.groups) {
        size_t first = IdIndex::kNone;
        for (int64_t id : g.members) {
            const size_t i = ids.find(id);
            if (i == IdIndex::kNone) continue;
            if (first == IdIndex::kNone) first = i;
            unit[i] = first;
        }
    }

    NearResult out;
    std::vector<double> centrality(n, 0.0); // per item: sum of evidence over its pairs
    std::vector<std::pair<size_t, size_t>> edges; // between units, both directions
    for (const auto& p : pairs) {
        const size_t ua = unit[p.a], ub = unit[p.b];
        if (ua == ub) continue; // inside one exact group
        const double e = evidence_margin(p.score, p.threshold);
        centrality[p.a] += e;
        centrality[p.b] += e;
        edges.emplace_back(ua, ub);
        edges.emplace_back(ub, ua);
        DupPair d;
        d.a = items[std::min(p.a, p.b)].id;
        d.b = items[std::max(p.a, p.b)].id;
        d.score = p.score;
        d.detail = p.detail;
        d.threshold = p.threshold;
        out.pairs.push_back(std::move(d));
    }
    if (edges.empty()) return out;
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());

    // Members of each unit that has a pair, and the unit's keeper: largest resolution; then the
    // most central member (copies derive from their original, so it is the one closest to all of
    // them: a noisy copy is a bigger PNG but further from the rest); then the largest file; then
    // the first discovered.
    auto better = [&](size_t c, size_t k) {
        return std::make_tuple(items[c].width * items[c].height, centrality[c], items[c].file_size) >
               std::make_tuple(items[k].width * items[k].height, centrality[k], items[k].file_size);
    };
    std::vector<uint32_t> slot(n, UINT32_MAX); // unit -> its entry below
    std::vector<size_t> unit_of_slot;
    for (const auto& e : edges)
        if (slot[e.first] == UINT32_MAX) {
            slot[e.first] = uint32_t(unit_of_slot.size());
            unit_of_slot.push_back(e.first);
        }
    const size_t m = unit_of_slot.size();
    std::vector<std::vector<size_t>> members(m);
    std::vector<size_t> best(m);
    std::vector<double> unit_centrality(m, 0.0);
    for (size_t i = 0; i < n; ++i) {
        const uint32_t s = slot[unit[i]];
        if (s == UINT32_MAX) continue;
        if (members[s].empty() || better(i, best[s])) best[s] = i;
        members[s].push_back(i);
        unit_centrality[s] += centrality[i];
    }

    // Star linkage: the most keeper-like unit not yet in a group takes every unit it is paired
    // with that is not in a group either, and so on down. Every member of a group is then a near
    // duplicate (or an exact copy of one) of the group's keeper: a chain A~B~C of distinct A and
    // C never puts A and C in one group on the strength of B. Left-over pairs stay pairs.
    std::vector<uint32_t> order(m);
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
        const DupItem &a = items[best[x]], &b = items[best[y]];
        return std::make_tuple(a.width * a.height, unit_centrality[x], a.file_size, -int64_t(best[x])) >
               std::make_tuple(b.width * b.height, unit_centrality[y], b.file_size, -int64_t(best[y]));
    });
    std::vector<char> grouped(m, 0);
    for (uint32_t s : order) {
        if (grouped[s]) continue;
        const size_t u = unit_of_slot[s];
        auto first = std::lower_bound(edges.begin(), edges.end(), std::make_pair(u, size_t(0)));
        std::vector<size_t> group_items;
        for (auto e = first; e != edges.end() && e->first == u; ++e) {
            const uint32_t t = slot[e->second];
            if (grouped[t]) continue;
            grouped[t] = 1;
            group_items.insert(group_items.end(), members[t].begin(), members[t].end());
        }
        if (group_items.empty()) continue; // every unit it is paired with has a keeper already
        grouped[s] = 1;
        group_items.insert(group_items.end(), members[s].begin(), members[s].end());
        std::sort(group_items.begin(), group_items.end());
        DupGroup g;
        g.kind = "near";
        g.keeper = items[best[s]].id;
        for (size_t i : group_items) g.members.push_back(items[i].id);
        std::sort(g.members.begin(), g.members.end());
        out.groups.push_back(std::move(g));
    }
    std::sort(out.groups.begin(), out.groups.end(),
              [](const DupGroup& a, const DupGroup& b) { return a.members.front() < b.members.front(); });
    return out;
}

namespace {

constexpr size_t kMaxPairsPerCode = 100;

bool sorted_by_id(const std::vector<DupItem>& items) {
    return std::is_sorted(items.begin(), items.end(),
                          [](const DupItem& x, const DupItem& y) { return x.id < y.id; });
}

} // namespace

std::vector<IndexPair> checked_pairs(std::vector<IndexPair> pairs, const PairCheck& check) {
    if (!check) return pairs;
    size_t kept = 0;
    for (auto& p : pairs)
        if (check(&p, false) != Verdict::kNotCopy) pairs[kept++] = std::move(p);
    pairs.resize(kept);
    return pairs;
}

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
        const IdIndex positions(items);
        auto live = [&](int64_t id) -> int64_t { // index into codes of an unchanged item, or -1
            const size_t p = positions.find(id);
            return p != IdIndex::kNone && items[p].derived ? code_of[p] : -1;
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
    // The detail of a pair depends on its two distances only: spelled once per distance pair
    // (up to 33 x 65), not once per pair (a re-scan of 1 M images derives ~1 M pairs again).
    std::vector<std::string> details(size_t(radius + 1) * size_t(dhash_radius + 1));
    auto spell = [&](int distance, int dd) {
        return "pHash distance " + std::to_string(distance) + " <= " + std::to_string(radius) +
               ", dHash distance " + std::to_string(dd) + " <= " + std::to_string(dhash_radius);
    };
    auto detail = [&](int distance, int dd) -> std::string {
        if (distance < 0 || distance > radius) return spell(distance, dd); // not from this radius
        std::string& d = details[size_t(distance) * size_t(dhash_radius + 1) + size_t(dd)];
        if (d.empty()) d = spell(distance, dd);
        return d;
    };
    std::vector<IndexPair> out;
    out.reserve(pairs.size());
    for (const HashPair& p : pairs) {
        const size_t a = ids.find(p.a), b = ids.find(p.b);
        if (a == IdIndex::kNone || b == IdIndex::kNone) continue;
        const int dd = hash::hamming(items[a].dhash, items[b].dhash);
        if (dd > dhash_radius) continue;
        out.push_back({std::min(a, b), std::max(a, b), 1.0 - p.distance / 64.0, detail(p.distance, dd),
                       1.0 - radius / 64.0});
    }
    return out;
}

} // namespace vislint::graph
