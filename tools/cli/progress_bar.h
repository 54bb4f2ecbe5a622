// Terminal progress bar: stage name, bar, done/total, rate and ETA, redrawn in place on stderr.
#pragma once

#include <chrono>
#include <string>

#include "vislint/progress.h"

namespace vislint::cli {

class ProgressBar : public Progress {
public:
    // `enabled`: draw the bar (stderr is a terminal and --quiet was not given).
    // `verbose_logs`: print info messages too (warnings are always printed).
    ProgressBar(bool enabled, bool verbose_logs);
    ~ProgressBar() override;

    bool progress(const char* stage, uint64_t done, uint64_t total) override;
    void log(const char* level, const char* message) override;
    void finish(); // ends the current line

private:
    bool enabled_, verbose_;
    std::string stage_;
    std::chrono::steady_clock::time_point stage_start_;
    bool line_open_ = false;
};

// Set by SIGINT or SIGTERM; progress() then returns false so the scan stops cleanly.
void install_interrupt_handler();
bool interrupted();
// The shell's code for death by the signal received: 130 (SIGINT), 143 (SIGTERM).
int interrupt_exit_code();

} // namespace vislint::cli
