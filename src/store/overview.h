// The report's overview of the images table: the number of rows, of broken ones, the rows by
// format, and five histograms of the decoded rows (width, height, brightness, log10 sharpness,
// log10 file size). The scan's derivation builds it from the two passes over the table it makes
// anyway and keeps it as meta `overview`, so that a report at 10 M images does not read every
// row four more times; compute_overview() gives the same from SQL for work dirs without it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "store/db.h"

namespace vislint::store {

class OverviewBuilder {
public:
    // Pass 1 reads kRangeQuery: each decoded row (status ok, width known) widens the histograms'
    // ranges. Its columns are width, height, brightness, blur, file_size (callers may read them).
    static constexpr const char* kRangeQuery = "SELECT width, height, brightness, blur, file_size FROM images "
                                               "WHERE status = 'ok' AND width IS NOT NULL";
    void range(const Stmt& row);
    // Pass 2, every row; a decoded row (r.has_pixels) enters the histograms.
    void add(const ImageRecord& r);
    // {"images", "broken", "formats": {format: rows}, "histograms": {name: {edges, counts}}}
    nlohmann::json to_json() const;

private:
    struct Range {
        double lo = 0, hi = 0;
        bool any = false;
        void add(double v);
    };
    struct Histogram {
        double lo = 0, hi = 1;
        std::vector<int64_t> counts;
        int64_t n = 0;
        void add(double x);
        nlohmann::json to_json() const;
    };
    void start_histograms();

    Range ranges_[5];
    std::vector<Histogram> histograms_; // made from ranges_ at the first add()
    int64_t images_ = 0, broken_ = 0;
    std::map<std::string, int64_t> formats_;
};

// The overview by SQL: a pass for the ranges, one for the rest.
nlohmann::json compute_overview(Db& db);

// meta `overview` when the last scan stored it, else compute_overview().
nlohmann::json read_overview(Db& db);

} // namespace vislint::store
