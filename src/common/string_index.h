// A set of strings numbered in insertion order, for the million-path lookups of a scan
// (discovery's "seen before?", the plan's "which row is this file?"). The bytes live in one
// arena and the table holds 4-byte numbers, so a million paths cost their length plus ~12 bytes
// each and one allocation, instead of a node, a string and a hash per entry.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vislint {

class StringIndex {
public:
    static constexpr uint32_t kNone = UINT32_MAX;

    explicit StringIndex(size_t expected = 0);

    // The number of `s`, and whether it was added now (false: it was there already).
    std::pair<uint32_t, bool> insert(std::string_view s);
    // The number of `s`, or kNone.
    uint32_t find(std::string_view s) const;

    size_t size() const { return offsets_.size() - 1; }
    std::string_view at(uint32_t i) const {
        return std::string_view(arena_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
    }

private:
    uint64_t slot_of(std::string_view s, uint32_t* found) const;
    void grow();

    std::string arena_;
    std::vector<uint64_t> offsets_{0}; // string i is arena_[offsets_[i], offsets_[i + 1])
    std::vector<uint64_t> hashes_;     // per string
    std::vector<uint32_t> slots_;      // open addressing: string number + 1, 0 = empty
};

} // namespace vislint
