#pragma once

#include <cstdint>

namespace vislint {

// The core never prints. Long operations report through this interface.
//
// progress() is called from the thread that called the scan, never from worker threads, at
// most a few dozen times per second. `total` is 0 when unknown. Returning false cancels the
// operation: it stops as soon as the work in flight is done and throws vislint::Cancelled after
// saving what is complete (a later scan into the same work dir resumes from there).
class Progress {
public:
    virtual ~Progress() = default;
    virtual bool progress(const char* stage, uint64_t done, uint64_t total) = 0;
    // A message for the user (warnings such as "skipped 3 files without an image extension").
    virtual void log(const char* level, const char* message) {}
};

} // namespace vislint
