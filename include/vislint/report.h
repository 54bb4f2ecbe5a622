// The HTML report of a work dir.
//
//   std::string page = vislint::write_report("/tmp/lint", {}, &my_progress);
//
// Writes WORK_DIR/report/index.html (one self-contained page: the template in
// src/report/report.html with the scan's findings injected as JSON) and WORK_DIR/report/thumbs/
// (small JPEGs of the images the page shows, named by content hash, so a re-run reuses them and
// a changed file gets a new one). Opens from disk (file://): no server, no network. Never
// writes outside WORK_DIR/report. Not safe to call concurrently on the same work dir.
#pragma once

#include <string>

#include "vislint/progress.h"

namespace vislint {

// The rows each issue type shows when none is asked for (CLI --max-rows-per-type).
inline constexpr int kDefaultMaxRowsPerType = 5000;

// The page holds at most max_rows_per_type rows of each issue type (the strongest: see
// src/report/DATA.md for the rank of each type), at most max_rows_per_type duplicate groups
// (largest first) with max_group_members members each, and max_clusters clusters with
// max_cluster_members members each; the true totals are always given beside them. Every row stays
// in the work dir (vislint issues, Scan.issues). So the page, its thumbnails and the writer's
// memory are bounded by these caps, whatever the number of images or issue rows.
struct ReportOptions {
    int thumb_side = 160;       // longer side of the thumbnails, px
    int threads = 0;            // thumbnail workers; 0 = all hardware threads
    int max_rows_per_type = kDefaultMaxRowsPerType;
    int max_group_members = 50;   // members shown per duplicate group (the keeper always; size always given)
    int max_cluster_members = 50; // members shown per cluster (its size is always given)
    int max_clusters = 500;
};

// Throws vislint::Error naming the option when a value is out of range (every cap must be >= 1).
// write_report() calls it; a front end calls it before a scan that ends with a report.
void check_report_options(const ReportOptions& options);

// Returns the path of index.html. Throws vislint::Error when an option is out of range, work_dir
// is not a work dir or the report cannot be written; vislint::Cancelled when progress returned false.
std::string write_report(const std::string& work_dir, const ReportOptions& options, Progress* progress);

} // namespace vislint
