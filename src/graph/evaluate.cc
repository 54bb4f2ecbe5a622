#include "graph/evaluate.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <utility>

#include "graph/union_find.h"

namespace vislint::graph {
namespace {

TypeScore score(uint64_t predicted, uint64_t truth, uint64_t matched) {
    TypeScore s;
    s.predicted = predicted;
    s.truth = truth;
    s.matched = matched;
    s.precision = predicted ? double(matched) / double(predicted) : 0.0;
    s.recall = truth ? double(matched) / double(truth) : 0.0;
    s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    return s;
}

template <typename Key>
TypeScore compare_sets(const std::set<Key>& p, const std::set<Key>& t) {
    uint64_t matched = 0;
    for (const Key& k : p) matched += t.count(k);
    return score(p.size(), t.size(), matched);
}

uint64_t pairs_of(uint64_t n) { return n * (n - 1) / 2; }

// Items joined by the duplicate pairs of `kinds` on one side: item number -> group root.
std::unordered_map<size_t, size_t> close_groups(const std::vector<Finding>& rows, const std::set<std::string>& kinds,
                                                std::unordered_map<std::string, size_t>* number) {
    std::vector<std::pair<size_t, size_t>> edges;
    auto id = [&](const std::string& name) { return number->emplace(name, number->size()).first->second; };
    for (const Finding& f : rows)
        if (kinds.count(f.type) && !f.other.empty() && f.other != f.item) edges.emplace_back(id(f.item), id(f.other));
    UnionFind uf(number->size());
    for (const auto& [a, b] : edges) uf.unite(a, b);
    std::unordered_map<size_t, size_t> root;
    for (const auto& [a, b] : edges) {
        root[a] = uf.find(a);
        root[b] = uf.find(b);
    }
    return root;
}

TypeScore compare_groups(const std::vector<Finding>& predicted, const std::vector<Finding>& truth,
                         const std::set<std::string>& kinds) {
    std::unordered_map<std::string, size_t> number; // one numbering for both sides
    const auto p = close_groups(predicted, kinds, &number);
    const auto t = close_groups(truth, kinds, &number);
    auto count_pairs = [](const std::unordered_map<size_t, size_t>& root) {
        std::unordered_map<size_t, uint64_t> size;
        for (const auto& [item, r] : root) ++size[r];
        uint64_t n = 0;
        for (const auto& [r, s] : size) n += pairs_of(s);
        return n;
    };
    std::map<std::pair<size_t, size_t>, uint64_t> cell; // (predicted group, true group) -> items
    for (const auto& [item, r] : p) {
        auto it = t.find(item);
        if (it != t.end()) ++cell[{r, it->second}];
    }
    uint64_t matched = 0;
    for (const auto& [key, n] : cell) matched += pairs_of(n);
    return score(count_pairs(p), count_pairs(t), matched);
}

bool is_duplicate(const std::string& type) { return type == "exact_duplicate" || type == "near_duplicate"; }

} // namespace

std::map<std::string, TypeScore> score_findings(const std::vector<Finding>& predicted, const std::vector<Finding>& truth) {
    std::set<std::string> types;
    for (const auto* side : {&predicted, &truth})
        for (const Finding& f : *side) types.insert(f.type);
    std::map<std::string, TypeScore> out;
    for (const std::string& type : types) {
        if (is_duplicate(type)) continue;
        if (type == "leak") {
            std::set<std::pair<std::string, std::string>> p, t;
            for (const auto& [side, set] : {std::pair{&predicted, &p}, {&truth, &t}})
                for (const Finding& f : *side)
                    if (f.type == type) set->insert(std::minmax(f.item, f.other));
            out[type] = compare_sets(p, t);
            continue;
        }
        std::set<std::string> p, t;
        for (const auto& [side, set] : {std::pair{&predicted, &p}, {&truth, &t}})
            for (const Finding& f : *side)
                if (f.type == type) set->insert(f.item);
        out[type] = compare_sets(p, t);
    }
    if (types.count("exact_duplicate") || types.count("near_duplicate"))
        out["duplicate"] = compare_groups(predicted, truth, {"exact_duplicate", "near_duplicate"});
    if (types.count("exact_duplicate")) out["exact_duplicate"] = compare_groups(predicted, truth, {"exact_duplicate"});
    return out;
}

} // namespace vislint::graph
