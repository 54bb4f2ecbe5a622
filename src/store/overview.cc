#include "store/overview.h"

#include <algorithm>
#include <cmath>

namespace vislint::store {
namespace {

constexpr const char* kNames[5] = {"width", "height", "brightness", "blur", "file_size"};
constexpr int kBins[5] = {30, 30, 32, 30, 30};

double log10_floor(double v) { return std::log10(std::max(v, 1e-6)); }

} // namespace

void OverviewBuilder::Range::add(double v) {
    lo = any ? std::min(lo, v) : v;
    hi = any ? std::max(hi, v) : v;
    any = true;
}

void OverviewBuilder::Histogram::add(double x) {
    int b = int((x - lo) / (hi - lo) * double(counts.size()));
    ++counts[size_t(std::clamp(b, 0, int(counts.size()) - 1))];
    ++n;
}

nlohmann::json OverviewBuilder::Histogram::to_json() const {
    nlohmann::json h = {{"edges", nlohmann::json::array()}, {"counts", nlohmann::json::array()}};
    if (n == 0) return h;
    for (size_t b = 0; b <= counts.size(); ++b) h["edges"].push_back(lo + (hi - lo) * double(b) / double(counts.size()));
    h["counts"] = counts;
    return h;
}

void OverviewBuilder::range(const Stmt& row) {
    for (int i = 0; i < 4; ++i) ranges_[i].add(row.real(i));
    if (!row.is_null(4)) ranges_[4].add(row.real(4));
}

void OverviewBuilder::start_histograms() {
    for (int i = 0; i < 5; ++i) {
        // Sharpness and file size on a log scale; a range of one value gets width 1.
        double lo = ranges_[i].lo, hi = ranges_[i].hi;
        if (i >= 3) lo = log10_floor(lo), hi = log10_floor(hi);
        Histogram h;
        h.lo = lo;
        h.hi = hi > lo ? hi : lo + 1;
        h.counts.assign(size_t(kBins[i]), 0);
        histograms_.push_back(std::move(h));
    }
}

void OverviewBuilder::add(const ImageRecord& r) {
    if (histograms_.empty()) start_histograms();
    ++images_;
    broken_ += !r.status.ok();
    if (!r.format.empty()) ++formats_[r.format];
    if (!r.has_pixels) return;
    histograms_[0].add(r.width);
    histograms_[1].add(r.height);
    histograms_[2].add(r.stats.brightness);
    histograms_[3].add(log10_floor(r.stats.blur));
    if (r.file_size > 0) histograms_[4].add(log10_floor(double(r.file_size)));
}

nlohmann::json OverviewBuilder::to_json() const {
    nlohmann::json h = nlohmann::json::object();
    for (int i = 0; i < 5; ++i) h[kNames[i]] = histograms_.empty() ? Histogram().to_json() : histograms_[size_t(i)].to_json();
    return {{"images", images_}, {"broken", broken_}, {"formats", formats_}, {"histograms", h}};
}

nlohmann::json compute_overview(Db& db) {
    OverviewBuilder b;
    {
        Stmt s(db.handle(), OverviewBuilder::kRangeQuery);
        while (s.step()) b.range(s);
    }
    for_each_image(db, [&](ImageRecord&& r) { b.add(r); });
    return b.to_json();
}

nlohmann::json read_overview(Db& db) {
    const std::string stored = db.meta("overview");
    if (!stored.empty()) {
        nlohmann::json j = nlohmann::json::parse(stored, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.contains("histograms")) return j;
    }
    return compute_overview(db);
}

} // namespace vislint::store
