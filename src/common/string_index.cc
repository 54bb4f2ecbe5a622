#include "common/string_index.h"

#include <xxhash.h>

#include "common/assert.h"

namespace vislint {
namespace {

uint64_t hash_of(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

size_t table_size(size_t n) {
    size_t size = 16;
    while (size < n * 2) size *= 2; // at most half full
    return size;
}

} // namespace

StringIndex::StringIndex(size_t expected) : slots_(table_size(expected), 0) {
    offsets_.reserve(expected + 1);
    hashes_.reserve(expected);
}

// The slot holding `s` (and its number in *found), or the empty slot where it would go (*found
// = kNone). Linear probing: the table is at most half full.
uint64_t StringIndex::slot_of(std::string_view s, uint32_t* found) const {
    const uint64_t h = hash_of(s), mask = slots_.size() - 1;
    for (uint64_t slot = h & mask;; slot = (slot + 1) & mask) {
        const uint32_t v = slots_[slot];
        if (v == 0) {
            *found = kNone;
            return slot;
        }
        if (hashes_[v - 1] == h && at(v - 1) == s) {
            *found = v - 1;
            return slot;
        }
    }
}

void StringIndex::grow() {
    std::vector<uint32_t> slots(slots_.size() * 2, 0);
    const uint64_t mask = slots.size() - 1;
    for (uint32_t i = 0; i < hashes_.size(); ++i) {
        uint64_t slot = hashes_[i] & mask;
        while (slots[slot] != 0) slot = (slot + 1) & mask;
        slots[slot] = i + 1;
    }
    slots_.swap(slots);
}

std::pair<uint32_t, bool> StringIndex::insert(std::string_view s) {
    uint32_t found;
    uint64_t slot = slot_of(s, &found);
    if (found != kNone) return {found, false};
    VISLINT_ASSERT(hashes_.size() < kNone - 1);
    if ((hashes_.size() + 1) * 2 > slots_.size()) {
        grow();
        slot = slot_of(s, &found);
    }
    const uint32_t i = uint32_t(hashes_.size());
    arena_.append(s);
    offsets_.push_back(arena_.size());
    hashes_.push_back(hash_of(s));
    slots_[slot] = i + 1;
    return {i, true};
}

uint32_t StringIndex::find(std::string_view s) const {
    uint32_t found;
    slot_of(s, &found);
    return found;
}

} // namespace vislint
