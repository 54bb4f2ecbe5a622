// Disjoint sets over 0..n-1 and their connected components: the grouping used for duplicate
// groups and for clusters.
#pragma once

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <unordered_map>
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
// smallest member.
inline std::vector<std::vector<size_t>> components(UnionFind& uf) {
    std::unordered_map<size_t, size_t> slot;
    std::vector<std::vector<size_t>> out;
    for (size_t i = 0; i < uf.size(); ++i) {
        auto [it, added] = slot.emplace(uf.find(i), out.size());
        if (added) out.emplace_back();
        out[it->second].push_back(i);
    }
    out.erase(std::remove_if(out.begin(), out.end(), [](const auto& c) { return c.size() < 2; }),
              out.end());
    return out;
}

} // namespace vislint::graph
