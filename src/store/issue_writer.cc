#include "store/issue_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <xxhash.h>

namespace vislint::store {
namespace {

// The row's columns in one buffer: type, 0, image id, other id (or a null mark), score and
// threshold bits (or null marks), detail. Nulls and values cannot collide: each is tagged.
XXH128_hash_t row_key(std::string* buf, const std::string& type, int64_t image_id,
                      const int64_t* other, const double* score, const double* threshold,
                      const std::string& detail) {
    buf->assign(type);
    buf->push_back('\0');
    auto put = [buf](const void* p, size_t n) { buf->append(static_cast<const char*>(p), n); };
    put(&image_id, 8);
    buf->push_back(other ? 1 : 0);
    if (other) put(other, 8);
    for (const double* v : {score, threshold}) {
        const bool null = !v || std::isnan(*v);
        buf->push_back(null ? 0 : 1);
        if (!null) put(v, 8);
    }
    buf->append(detail);
    return XXH3_128bits(buf->data(), buf->size());
}

} // namespace

IssueWriter::IssueWriter(Db& db)
    : db_(db),
      ins_(db.handle(), "INSERT INTO issues(type, image_id, other_id, score, threshold, detail) "
                        "VALUES(?,?,?,?,?,?)") {
    Stmt s(db.handle(), "SELECT id, type, image_id, other_id, score, threshold, detail FROM issues");
    std::string buf, type, detail;
    while (s.step()) {
        type = s.text(1);
        detail = s.text(6);
        const int64_t other = s.int64(3);
        const double score = s.real(4), threshold = s.real(5);
        const XXH128_hash_t h =
            row_key(&buf, type, s.int64(2), s.is_null(3) ? nullptr : &other,
                    s.is_null(4) ? nullptr : &score, s.is_null(5) ? nullptr : &threshold, detail);
        old_.push_back({h.high64, h.low64, s.int64(0)});
    }
    claimed_.assign(old_.size(), false);
    // Open addressing on the key's low bits (XXH3 bits are uniform), at most half full: one or
    // two probes per add(), where a binary search over ~1 M rows cost ~20 cache misses.
    size_t slots = 16;
    while (slots < 2 * old_.size()) slots <<= 1;
    slots_.assign(slots, kEmpty);
    const size_t mask = slots - 1;
    for (uint32_t i = 0; i < old_.size(); ++i) {
        size_t at = size_t(old_[i].lo) & mask;
        while (slots_[at] != kEmpty) at = (at + 1) & mask;
        slots_[at] = i;
    }
}

void IssueWriter::add(const std::string& type, int64_t image_id, const int64_t* other_id,
                      double score, const double* threshold, const std::string& detail) {
    const XXH128_hash_t h = row_key(&buf_, type, image_id, other_id, &score, threshold, detail);
    const size_t mask = slots_.size() - 1;
    for (size_t at = size_t(h.low64) & mask; slots_[at] != kEmpty; at = (at + 1) & mask) {
        const uint32_t i = slots_[at];
        if (old_[i].hi != h.high64 || old_[i].lo != h.low64 || claimed_[i]) continue;
        claimed_[i] = true;
        ++kept_;
        return;
    }
    ins_.bind(1, type).bind(2, image_id);
    if (other_id) ins_.bind(3, *other_id); else ins_.bind_null(3);
    ins_.bind(4, score);
    if (threshold) ins_.bind(5, *threshold); else ins_.bind_null(5);
    ins_.bind(6, detail).run();
    ++inserted_;
}

void IssueWriter::finish() {
    Stmt del(db_.handle(), "DELETE FROM issues WHERE id = ?");
    std::vector<int64_t> gone;
    for (size_t i = 0; i < old_.size(); ++i)
        if (!claimed_[i]) gone.push_back(old_[i].rowid);
    std::sort(gone.begin(), gone.end());
    for (int64_t id : gone) del.bind(1, id).run();
    deleted_ = gone.size();
    std::vector<Entry>().swap(old_);
    std::vector<bool>().swap(claimed_);
    std::vector<uint32_t>().swap(slots_);
}

} // namespace vislint::store
