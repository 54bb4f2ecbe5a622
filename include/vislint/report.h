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

struct ReportOptions {
    int thumb_side = 160;       // longer side of the thumbnails, px
    int threads = 0;            // thumbnail workers; 0 = all hardware threads
    int max_cluster_members = 50; // members shown per cluster (its size is always given)
    int max_clusters = 500;
};

// Returns the path of index.html. Throws vislint::Error when work_dir is not a work dir or the
// report cannot be written; vislint::Cancelled when progress returned false.
std::string write_report(const std::string& work_dir, const ReportOptions& options, Progress* progress);

} // namespace vislint
