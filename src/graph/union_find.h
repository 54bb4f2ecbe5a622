// Disjoint sets over 0..n-1 and their connected components: the grouping used for duplicate
// groups and for clusters.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

namespace vislint::graph {

class UnionFind {
public:
    explicit UnionFind(size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }
    size_t find(size_t x) {
        while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
        return x;
    }
    // The smaller root wins, so a component's root is its smallest member.
    void unite(size_t a, size_t b) {
        a = find(a);
        b = find(b);
        if (a != b) parent_[std::max(a, b)] = std::min(a, b);
    }
    size_t size() const { return parent_.size(); }

private:
    std::vector<size_t> parent_;
};

// Components with at least two members, members in index order, components ordered by their
// smallest member. Flat arrays (8 bytes per index): at 10 M items a hash map of roots and a
// vector per singleton cost seconds and gigabytes.
inline std::vector<std::vector<size_t>> components(UnionFind& uf) {
    constexpr uint32_t kNone = UINT32_MAX;
    const size_t n = uf.size();
    std::vector<uint32_t> count(n, 0), slot(n, kNone);
    for (size_t i = 0; i < n; ++i) ++count[uf.find(i)];
    std::vector<std::vector<size_t>> out;
    for (size_t i = 0; i < n; ++i) {
        const size_t r = uf.find(i);
        if (count[r] < 2) continue;
        if (slot[r] == kNone) {
            slot[r] = uint32_t(out.size());
            out.emplace_back().reserve(count[r]);
        }
        out[slot[r]].push_back(i);
    }
    return out;
}

} // namespace vislint::graph
