#include "graph/labels.h"

#include <algorithm>
#include <map>

namespace vislint::graph {
namespace {

int split_rank(const std::string& s) {
    if (s == "train") return 0;
    if (s == "val") return 1;
    if (s == "test") return 2;
    return 3;
}

} // namespace

bool split_before(const std::string& a, const std::string& b) {
    int ra = split_rank(a), rb = split_rank(b);
    return ra != rb ? ra < rb : a < b;
}

std::vector<LabelVote> vote_labels(const Neighbours& nn, const std::vector<int>& labels, int n_classes) {
    const size_t n = size_t(nn.n), k = size_t(nn.k), c = size_t(std::max(n_classes, 1));
    auto weight = [&](size_t i, size_t j) { return std::max(0.0, double(nn.sims[i * k + j])); };
    auto neighbour = [&](size_t i, size_t j) { return nn.ids[i * k + j]; };
    // Round 1: every item's distribution from its labelled neighbours' given labels, kept
    // unnormalised (sums and total weight) so one voter can be taken out again below.
    std::vector<double> sums(n * c, 0.0), totals(n, 0.0);
    for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < k; ++j) {
            int64_t o = neighbour(i, j);
            if (o < 0) break;
            if (size_t(o) == i || labels[size_t(o)] < 0) continue;
            sums[i * c + size_t(labels[size_t(o)])] += weight(i, j);
            totals[i] += weight(i, j);
        }
    // Round 2: each labelled item is judged by its neighbours' round-1 distributions with its own
    // label taken out of them, so a wrong label cannot vote for itself through its neighbours.
    // Soft labels of neighbours outvote the noise in their given labels: on Fashion-MNIST with
    // 10 % flips this lifts AUROC from 0.982 to 0.986 at k = 10 (bench/labels.py).
    std::vector<LabelVote> out;
    std::vector<double> p(c), q(c);
    for (size_t i = 0; i < n; ++i) {
        if (labels[i] < 0) continue;
        LabelVote v;
        v.position = i;
        v.given = labels[i];
        std::fill(p.begin(), p.end(), 0.0);
        double total = 0;
        for (size_t j = 0; j < k; ++j) {
            int64_t o = neighbour(i, j);
            if (o < 0) break;
            const size_t oj = size_t(o);
            if (oj == i) continue;
            if (labels[oj] >= 0) v.voters.push_back(oj);
            // Neighbour o's distribution without i's vote.
            std::copy(sums.begin() + long(oj * c), sums.begin() + long((oj + 1) * c), q.begin());
            double qt = totals[oj];
            for (size_t m = 0; m < k; ++m)
                if (neighbour(oj, m) == int64_t(i)) {
                    q[size_t(labels[i])] -= weight(oj, m);
                    qt -= weight(oj, m);
                    break;
                }
            if (qt <= 1e-12) { // no other evidence: fall back to o's own given label
                if (labels[oj] < 0) continue;
                std::fill(q.begin(), q.end(), 0.0);
                q[size_t(labels[oj])] = qt = 1.0;
            }
            const double w = weight(i, j);
            for (size_t m = 0; m < c; ++m) p[m] += w * std::max(0.0, q[m]) / qt;
            total += w;
        }
        if (v.voters.empty() || total <= 0) continue;
        for (double& x : p) x /= total;
        v.suggested = int(std::max_element(p.begin(), p.end()) - p.begin());
        if (p[size_t(v.suggested)] <= p[size_t(v.given)]) v.suggested = v.given;
        v.score = std::clamp(1.0 - p[size_t(v.given)], 0.0, 1.0);
        out.push_back(std::move(v));
    }
    return out;
}

std::vector<Leak> find_leaks(const ExactResult& exact, const NearResult& near,
                             const std::vector<std::string>& split_of) {
    auto split = [&](int64_t id) -> const std::string& {
        static const std::string kNone;
        return id >= 0 && size_t(id) < split_of.size() ? split_of[size_t(id)] : kNone;
    };
    // Best partner per (image, earlier split).
    std::map<std::pair<int64_t, std::string>, Leak> best;
    auto consider = [&](int64_t x, int64_t y, double score, double threshold) {
        const std::string &sx = split(x), &sy = split(y);
        if (sx.empty() || sy.empty() || sx == sy) return;
        if (split_before(sx, sy)) std::swap(x, y); // x: the later split
        auto key = std::make_pair(x, split(y));
        // The best partner has the strongest evidence on its own rule's scale.
        const double m = evidence_margin(score, threshold);
        auto it = best.find(key);
        if (it == best.end()) {
            best[key] = Leak{x, y, score, threshold, ""};
            return;
        }
        const double mo = evidence_margin(it->second.score, it->second.threshold);
        if (m > mo || (m == mo && y < it->second.b)) it->second = Leak{x, y, score, threshold, ""};
    };
    for (const DupGroup& g : exact.groups) {
        // Every pair of an exact group is a duplicate pair; one member per split suffices.
        std::map<std::string, int64_t> first_in_split;
        for (int64_t id : g.members)
            if (!split(id).empty()) first_in_split.emplace(split(id), id);
        for (int64_t id : g.members)
            for (const auto& [s, other] : first_in_split)
                if (s != split(id)) consider(id, other, 1.0, 1.0);
    }
    for (const DupPair& p : near.pairs) consider(p.a, p.b, p.score, p.threshold);
    std::vector<Leak> out;
    for (auto& [key, leak] : best) {
        leak.detail = split(leak.a) + " image duplicates a " + split(leak.b) + " image (" +
                      (leak.score >= 1.0 && leak.threshold >= 1.0 ? "exact copy" : "near duplicate") + ")";
        out.push_back(std::move(leak));
    }
    std::sort(out.begin(), out.end(), [](const Leak& x, const Leak& y) {
        double mx = evidence_margin(x.score, x.threshold), my = evidence_margin(y.score, y.threshold);
        return mx != my ? mx > my : x.a < y.a;
    });
    return out;
}

} // namespace vislint::graph
