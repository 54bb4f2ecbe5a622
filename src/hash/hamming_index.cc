#include "hash/hamming_index.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "common/assert.h"
#include "hash/hashes.h"

namespace vislint::hash {
namespace {

struct Chunk {
    int shift, bits;
    uint64_t mask() const { return bits == 64 ? ~0ull : ((1ull << bits) - 1); }
};

std::vector<Chunk> make_chunks(int m) {
    std::vector<Chunk> chunks;
    int shift = 0;
    for (int j = 0; j < m; ++j) {
        int bits = 64 / m + (j < 64 % m ? 1 : 0);
        chunks.push_back({shift, bits});
        shift += bits;
    }
    return chunks;
}

double binom_sum(int n, int k) {
    double sum = 0, c = 1;
    for (int i = 0; i <= k; ++i) {
        sum += c;
        c = c * (n - i) / (i + 1);
    }
    return sum;
}

int choose_chunks(size_t n, int radius) {
    int best = 1;
    double best_cost = 1e300;
    for (int m = 1; m <= std::min(radius + 1, 16); ++m) {
        int bits = 64 / m, sub = radius / m;
        if (bits > 40) continue; // a chunk this wide only works for tiny radius via lookups below
        double lookups = m * binom_sum(bits, sub);
        double cost = lookups * (std::log2(double(n) + 2) + double(n) / std::ldexp(1.0, bits));
        if (cost < best_cost) {
            best_cost = cost;
            best = m;
        }
    }
    return best;
}

// Calls f(value) for every value within `budget` bit flips of `v` in the low `bits` bits.
template <typename F> void enumerate_flips(uint64_t v, int bits, int budget, int from, F& f) {
    f(v);
    if (budget == 0) return;
    for (int i = from; i < bits; ++i) enumerate_flips(v ^ (1ull << i), bits, budget - 1, i + 1, f);
}

// The chunk tables of multi-index hashing over `keys` (distinct codes): tables[j] holds
// (chunk j's value, index into keys), sorted. within() calls f(index, distance) for every key
// within `radius` of a code, possibly more than once for one index.
class ChunkTables {
public:
    ChunkTables(std::vector<uint64_t> keys, int radius)
        : keys_(std::move(keys)), radius_(radius), m_(choose_chunks(keys_.size(), radius)),
          chunks_(make_chunks(m_)), sub_(radius / m_), tables_(size_t(m_)) {
        for (int j = 0; j < m_; ++j) {
            auto& t = tables_[size_t(j)];
            t.resize(keys_.size());
            for (uint32_t u = 0; u < keys_.size(); ++u)
                t[u] = {(keys_[u] >> chunks_[size_t(j)].shift) & chunks_[size_t(j)].mask(), u};
            std::sort(t.begin(), t.end());
        }
    }
    template <typename F> void within(uint64_t code, F&& f) const {
        for (int j = 0; j < m_; ++j) {
            const auto& table = tables_[size_t(j)];
            auto lookup = [&](uint64_t key) {
                auto it = std::lower_bound(table.begin(), table.end(), std::make_pair(key, uint32_t(0)));
                for (; it != table.end() && it->first == key; ++it) {
                    const int d = hamming(code, keys_[it->second]);
                    if (d <= radius_) f(it->second, d);
                }
            };
            const Chunk& c = chunks_[size_t(j)];
            enumerate_flips((code >> c.shift) & c.mask(), c.bits, sub_, 0, lookup);
        }
    }

private:
    std::vector<uint64_t> keys_;
    int radius_, m_;
    std::vector<Chunk> chunks_;
    int sub_;
    std::vector<std::vector<std::pair<uint64_t, uint32_t>>> tables_;
};

// Sorts `found` (distance, index), drops repeats, keeps the `cap` closest.
void closest(std::vector<std::pair<int, uint32_t>>* found, size_t cap) {
    std::sort(found->begin(), found->end());
    found->erase(std::unique(found->begin(), found->end()), found->end());
    if (found->size() > cap) found->resize(cap);
}

// Runs f(i, &found, &out) for i in [0, nq) on `threads` threads (each with its own found
// buffer and output) and returns every output pair, sorted by (a, b).
template <typename F> std::vector<CodePair> run_queries(size_t nq, int threads, F&& f) {
    threads = std::max(1, threads);
    std::vector<std::vector<CodePair>> per_thread(static_cast<size_t>(threads));
    std::atomic<size_t> next{0};
    auto work = [&](int t) {
        std::vector<std::pair<int, uint32_t>> found;
        for (size_t i; (i = next.fetch_add(1)) < nq;) {
            found.clear();
            f(i, &found, &per_thread[size_t(t)]);
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    std::vector<CodePair> out;
    for (auto& v : per_thread) out.insert(out.end(), v.begin(), v.end());
    std::sort(out.begin(), out.end(), [](const CodePair& x, const CodePair& y) {
        return x.a != y.a ? x.a < y.a : x.b < y.b;
    });
    return out;
}

} // namespace

std::vector<CodePair> pairs_within_radius_brute(const std::vector<uint64_t>& codes, int radius) {
    std::vector<CodePair> out;
    for (uint32_t i = 0; i < codes.size(); ++i)
        for (uint32_t j = i + 1; j < codes.size(); ++j) {
            int d = hamming(codes[i], codes[j]);
            if (d <= radius) out.push_back({i, j, d});
        }
    return out;
}

std::vector<CodePair> pairs_within_radius(const std::vector<uint64_t>& codes, int radius,
                                          size_t max_per_code, int threads) {
    VISLINT_ASSERT(radius >= 0 && radius <= 32);
    std::vector<CodePair> out;
    if (codes.size() < 2) return out;

    // Collapse identical codes: `order` sorted by code, `uniq` = first index of each run.
    std::vector<uint32_t> order(codes.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
        return codes[a] != codes[b] ? codes[a] < codes[b] : a < b;
    });
    std::vector<uint32_t> uniq;     // representative index (smallest index with that code)
    for (size_t i = 0; i < order.size(); ++i) {
        if (i > 0 && codes[order[i]] == codes[order[i - 1]]) {
            out.push_back({uniq.back(), order[i], 0});
            continue;
        }
        uniq.push_back(order[i]);
    }
    const size_t n = uniq.size();

    std::vector<uint64_t> keys(n);
    for (size_t u = 0; u < n; ++u) keys[u] = codes[uniq[u]];
    const ChunkTables tables(std::move(keys), radius);

    // (distance, u) per query; identical-code pairs first, in `out` already.
    std::vector<CodePair> found = run_queries(n, threads, [&](size_t q, auto* near, std::vector<CodePair>* res) {
        tables.within(codes[uniq[q]], [&](uint32_t u, int d) {
            if (u > q) near->push_back({d, u}); // each pair once, from its smaller side
        });
        closest(near, max_per_code);
        for (const auto& [d, u] : *near) {
            const uint32_t a = uniq[q], b = uniq[u];
            res->push_back({std::min(a, b), std::max(a, b), d});
        }
    });
    out.insert(out.end(), found.begin(), found.end());
    std::sort(out.begin(), out.end(), [](const CodePair& x, const CodePair& y) {
        return x.a != y.a ? x.a < y.a : x.b < y.b;
    });
    return out;
}

std::vector<CodePair> pairs_of_queries(const std::vector<uint64_t>& codes,
                                       const std::vector<uint32_t>& queries, int radius,
                                       size_t max_per_code, int threads,
                                       std::vector<uint32_t>* members) {
    VISLINT_ASSERT(radius >= 0 && radius <= 32);
    std::vector<CodePair> out;
    if (members) members->clear();
    const size_t n_codes = codes.size();
    if (n_codes == 0 || queries.empty()) return out;
    // Distinct codes as in pairs_within_radius: `order` sorted by (code, index); a run of equal
    // codes is one distinct code whose representative is its smallest index.
    std::vector<uint32_t> order(n_codes);
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
        return codes[a] != codes[b] ? codes[a] < codes[b] : a < b;
    });
    std::vector<uint32_t> uniq, run_start; // per distinct code: representative, first in `order`
    std::vector<uint32_t> code_of(n_codes); // index -> distinct code
    for (size_t i = 0; i < order.size(); ++i) {
        if (i == 0 || codes[order[i]] != codes[order[i - 1]]) {
            uniq.push_back(order[i]);
            run_start.push_back(uint32_t(i));
        }
        code_of[order[i]] = uint32_t(uniq.size() - 1);
    }
    run_start.push_back(uint32_t(order.size()));
    const size_t n = uniq.size();
    std::vector<bool> is_query(n, false);
    std::vector<uint32_t> qcodes;
    for (uint32_t q : queries) {
        VISLINT_ASSERT(q < n_codes);
        if (!is_query[code_of[q]]) qcodes.push_back(code_of[q]);
        is_query[code_of[q]] = true;
    }
    std::sort(qcodes.begin(), qcodes.end());
    // Every member of a queried code: its pairs are all recomputed here.
    for (uint32_t u : qcodes) {
        for (uint32_t i = run_start[u]; i < run_start[u + 1]; ++i) {
            if (members) members->push_back(order[i]);
            if (i > run_start[u]) out.push_back({uniq[u], order[i], 0});
        }
    }
    if (members) std::sort(members->begin(), members->end());

    std::vector<uint64_t> keys(n);
    for (size_t u = 0; u < n; ++u) keys[u] = codes[uniq[u]];
    const ChunkTables tables(std::move(keys), radius);
    std::vector<CodePair> found = run_queries(qcodes.size(), threads, [&](size_t i, auto* near, std::vector<CodePair>* res) {
        const uint32_t q = qcodes[i];
        tables.within(codes[uniq[q]], [&](uint32_t c, int d) {
            if (c != q && !(is_query[c] && c < q)) near->push_back({d, c}); // each pair once
        });
        closest(near, max_per_code);
        for (const auto& [d, c] : *near) {
            const uint32_t a = uniq[q], b = uniq[c];
            res->push_back({std::min(a, b), std::max(a, b), d});
        }
    });
    out.insert(out.end(), found.begin(), found.end());
    std::sort(out.begin(), out.end(), [](const CodePair& x, const CodePair& y) {
        return x.a != y.a ? x.a < y.a : x.b < y.b;
    });
    return out;
}

} // namespace vislint::hash
