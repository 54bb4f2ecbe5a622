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

// Chunks of up to this many bits are looked up in a table indexed by the chunk's value (CSR:
// 2^bits + 1 offsets, 4 bytes each: 64 MB at 24 bits); wider ones by binary search.
constexpr int kDirectBits = 24;

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
        // A direct-addressed chunk (bits <= kDirectBits) costs one cache miss per lookup and its
        // bucket is a contiguous run of codes (a miss per ~8 candidates); a sorted one costs a
        // binary search and a miss per candidate (its code is read from the keys).
        const bool direct = bits <= kDirectBits;
        double find = direct ? 1.0 : std::log2(double(n) + 2);
        double per_candidate = direct ? 0.125 : 1.0;
        double cost = lookups * (find + per_candidate * double(n) / std::ldexp(1.0, bits));
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

// The chunk tables of multi-index hashing over `keys` (distinct codes): for chunk j, the indices
// into keys (with their codes beside them, so a bucket is checked in one sequential read)
// ordered by chunk j's value, found by that value through a table of offsets (chunks of up to
// kDirectBits bits; one read per lookup, where a binary search over 1 M entries took ~20 cache
// misses) or by binary search over (value, index) pairs (wider chunks). within() calls
// f(index, distance) for every key within `radius` of a code, possibly more than once for one
// index.
class ChunkTables {
public:
    ChunkTables(std::vector<uint64_t> keys, int radius)
        : keys_(std::move(keys)), radius_(radius), m_(choose_chunks(keys_.size(), radius)),
          chunks_(make_chunks(m_)), sub_(radius / m_), tables_(size_t(m_)) {
        for (int j = 0; j < m_; ++j) {
            const Chunk& c = chunks_[size_t(j)];
            Table& t = tables_[size_t(j)];
            if (c.bits <= kDirectBits) {
                t.offsets.assign((size_t(1) << c.bits) + 1, 0);
                for (uint64_t k : keys_) ++t.offsets[((k >> c.shift) & c.mask()) + 1];
                for (size_t v = 1; v < t.offsets.size(); ++v) t.offsets[v] += t.offsets[v - 1];
                t.ids.resize(keys_.size());
                t.codes.resize(keys_.size());
                std::vector<uint32_t> fill(t.offsets.begin(), t.offsets.end() - 1);
                for (uint32_t u = 0; u < keys_.size(); ++u) {
                    const uint32_t at = fill[(keys_[u] >> c.shift) & c.mask()]++;
                    t.ids[at] = u;
                    t.codes[at] = keys_[u];
                }
            } else {
                t.sorted.resize(keys_.size());
                for (uint32_t u = 0; u < keys_.size(); ++u) t.sorted[u] = {(keys_[u] >> c.shift) & c.mask(), u};
                std::sort(t.sorted.begin(), t.sorted.end());
            }
        }
    }
    template <typename F> void within(uint64_t code, F&& f) const {
        for (int j = 0; j < m_; ++j) {
            const Table& table = tables_[size_t(j)];
            auto check = [&](uint32_t u) {
                const int d = hamming(code, keys_[u]);
                if (d <= radius_) f(u, d);
            };
            auto direct = [&](uint64_t key) {
                for (uint32_t i = table.offsets[key], e = table.offsets[key + 1]; i < e; ++i) {
                    const int d = hamming(code, table.codes[i]);
                    if (d <= radius_) f(table.ids[i], d);
                }
            };
            auto sorted = [&](uint64_t key) {
                auto it = std::lower_bound(table.sorted.begin(), table.sorted.end(), std::make_pair(key, uint32_t(0)));
                for (; it != table.sorted.end() && it->first == key; ++it) check(it->second);
            };
            const Chunk& c = chunks_[size_t(j)];
            const uint64_t value = (code >> c.shift) & c.mask();
            if (table.offsets.empty()) enumerate_flips(value, c.bits, sub_, 0, sorted);
            else enumerate_flips(value, c.bits, sub_, 0, direct);
        }
    }

private:
    struct Table {
        std::vector<uint32_t> offsets, ids;                 // direct: ids[offsets[v] .. offsets[v + 1])
        std::vector<uint64_t> codes;                        // ... and their codes, in the same order
        std::vector<std::pair<uint64_t, uint32_t>> sorted;  // wider chunks
    };
    std::vector<uint64_t> keys_;
    int radius_, m_;
    std::vector<Chunk> chunks_;
    int sub_;
    std::vector<Table> tables_;
};

// The codes grouped by value: `order` holds the indices sorted by (code, index); distinct code u
// spans order[start[u] .. start[u + 1]) and is represented by its smallest index, rep(u).
struct DistinctCodes {
    std::vector<uint32_t> order, start, code_of; // code_of: index -> distinct code
    explicit DistinctCodes(const std::vector<uint64_t>& codes) : order(codes.size()), code_of(codes.size()) {
        for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
        std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
            return codes[a] != codes[b] ? codes[a] < codes[b] : a < b;
        });
        for (size_t i = 0; i < order.size(); ++i) {
            if (i == 0 || codes[order[i]] != codes[order[i - 1]]) start.push_back(uint32_t(i));
            code_of[order[i]] = uint32_t(start.size() - 1);
        }
        start.push_back(uint32_t(order.size()));
    }
    size_t size() const { return start.size() - 1; }
    uint32_t rep(uint32_t u) const { return order[start[u]]; }
};

bool by_ab(const CodePair& x, const CodePair& y) { return x.a != y.a ? x.a < y.a : x.b < y.b; }

// For each distinct code u of `queried`: a link from rep(u) to every other index with its code,
// and pairs from rep(u) to rep(c) for its `cap` closest other codes c within `radius` with
// keep(u, c) (which says from which side a pair is taken). On `threads` threads; sorted by (a, b).
template <typename Keep>
std::vector<CodePair> search(const std::vector<uint64_t>& codes, const DistinctCodes& dc,
                             const std::vector<uint32_t>& queried, int radius, size_t cap,
                             int threads, Keep&& keep) {
    std::vector<CodePair> out;
    for (uint32_t u : queried)
        for (uint32_t i = dc.start[u] + 1; i < dc.start[u + 1]; ++i) out.push_back({dc.rep(u), dc.order[i], 0});
    std::vector<uint64_t> keys(dc.size());
    for (uint32_t u = 0; u < keys.size(); ++u) keys[u] = codes[dc.rep(u)];
    const ChunkTables tables(std::move(keys), radius);

    threads = std::max(1, threads);
    std::vector<std::vector<CodePair>> per_thread(static_cast<size_t>(threads));
    std::atomic<size_t> next{0};
    auto work = [&](int t) {
        std::vector<std::pair<int, uint32_t>> near; // (distance, distinct code)
        for (size_t i; (i = next.fetch_add(1)) < queried.size();) {
            const uint32_t u = queried[i];
            near.clear();
            tables.within(codes[dc.rep(u)], [&](uint32_t c, int d) {
                if (c != u && keep(u, c)) near.push_back({d, c});
            });
            std::sort(near.begin(), near.end());
            near.erase(std::unique(near.begin(), near.end()), near.end());
            if (near.size() > cap) near.resize(cap);
            for (const auto& [d, c] : near) {
                const uint32_t a = dc.rep(u), b = dc.rep(c);
                per_thread[size_t(t)].push_back({std::min(a, b), std::max(a, b), d});
            }
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    for (auto& v : per_thread) out.insert(out.end(), v.begin(), v.end());
    std::sort(out.begin(), out.end(), by_ab);
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
    if (codes.size() < 2) return {};
    const DistinctCodes dc(codes);
    std::vector<uint32_t> all(dc.size());
    for (uint32_t u = 0; u < all.size(); ++u) all[u] = u;
    // Each pair from its smaller distinct code (in code order).
    return search(codes, dc, all, radius, max_per_code, threads, [](uint32_t u, uint32_t c) { return c > u; });
}

std::vector<CodePair> pairs_of_queries(const std::vector<uint64_t>& codes,
                                       const std::vector<uint32_t>& queries, int radius,
                                       size_t max_per_code, int threads,
                                       std::vector<uint32_t>* members) {
    VISLINT_ASSERT(radius >= 0 && radius <= 32);
    if (members) members->clear();
    if (codes.empty() || queries.empty()) return {};
    const DistinctCodes dc(codes);
    std::vector<bool> is_query(dc.size(), false);
    std::vector<uint32_t> qcodes;
    for (uint32_t q : queries) {
        VISLINT_ASSERT(q < codes.size());
        if (!is_query[dc.code_of[q]]) qcodes.push_back(dc.code_of[q]);
        is_query[dc.code_of[q]] = true;
    }
    std::sort(qcodes.begin(), qcodes.end());
    // Every member of a queried code: its pairs are all recomputed here.
    if (members) {
        for (uint32_t u : qcodes)
            for (uint32_t i = dc.start[u]; i < dc.start[u + 1]; ++i) members->push_back(dc.order[i]);
        std::sort(members->begin(), members->end());
    }
    // A pair between two queried codes is taken from the smaller one.
    return search(codes, dc, qcodes, radius, max_per_code, threads,
                  [&](uint32_t u, uint32_t c) { return !(is_query[c] && c < u); });
}

} // namespace vislint::hash
