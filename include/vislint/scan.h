// Scanning a dataset.
//
//   vislint::ScanOptions opt;
//   opt.inputs = {"/data/train"};
//   opt.work_dir = "/tmp/lint";
//   vislint::ScanSummary s = vislint::scan(opt, &my_progress);
//
// scan() is not safe to call concurrently on the same work dir. It never writes inside the input
// folders. It runs its own worker threads (options.threads) and calls Progress from the calling
// thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vislint/options.h"
#include "vislint/progress.h"
#include "vislint/status.h"

namespace vislint {

const char* version();

struct ScanSummary {
    uint64_t images = 0;       // images in the work dir after the scan (broken included)
    uint64_t analysed = 0;     // decoded and analysed in this run
    uint64_t reused = 0;       // unchanged since the last scan (path, size, mtime): skipped
    uint64_t removed = 0;      // in the work dir but no longer found in the inputs
    uint64_t skipped_files = 0; // files under the input folders without an image extension
    uint64_t labelled = 0;      // items with a label
    uint64_t missing_label_files = 0; // label rows / annotations naming files that do not exist
    uint64_t skipped_boxes = 0; // --objects: boxes too small or outside their image
    std::map<std::string, uint64_t> issue_counts; // per issue type, every type present (0 too)
    std::map<std::string, double> timings;        // seconds per stage
    std::vector<std::string> warnings;            // every warning logged during the scan
    std::string db_path;
    std::string index; // the kNN index built, e.g. "PCA1280->256,Flat" (empty: none)
};

// Runs a scan. Throws vislint::Error for bad options / missing inputs / unwritable work dir, and
// vislint::Cancelled when progress returned false. REQUIRES: progress may be nullptr.
ScanSummary scan(const ScanOptions& options, Progress* progress);

} // namespace vislint
