#include "progress_bar.h"

#include <atomic>
#include <csignal>
#include <cstdio>

#include "common/text.h"

namespace vislint::cli {
namespace {

std::atomic<int> g_signal{0};

// SIGTERM (kill, systemd, a job scheduler) stops the scan as cleanly as Ctrl-C does.
void on_signal(int sig) {
    g_signal = sig;
    std::signal(sig, SIG_DFL); // a second one kills at once
}

std::string hms(double s) {
    if (s < 0 || s > 1e7) return "--:--";
    long t = long(s + 0.5);
    char buf[32];
    if (t >= 3600) std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else std::snprintf(buf, sizeof(buf), "%ld:%02ld", t / 60, t % 60);
    return buf;
}

} // namespace

void install_interrupt_handler() {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
}
bool interrupted() { return g_signal.load() != 0; }
int interrupt_exit_code() { return 128 + (g_signal.load() ? g_signal.load() : SIGINT); }

ProgressBar::ProgressBar(bool enabled, bool verbose) : enabled_(enabled), verbose_(verbose) {}
ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::finish() {
    if (line_open_) std::fputc('\n', stderr);
    line_open_ = false;
}

bool ProgressBar::progress(const char* stage, uint64_t done, uint64_t total) {
    if (interrupted()) return false;
    if (!enabled_) return true;
    auto now = std::chrono::steady_clock::now();
    if (stage_ != stage) {
        finish();
        stage_ = stage;
        stage_start_ = now;
    }
    double elapsed = std::chrono::duration<double>(now - stage_start_).count();
    double rate = elapsed > 0 ? done / elapsed : 0;
    char line[256];
    if (total > 0) {
        const int width = 30;
        int filled = int(width * double(done) / double(total));
        std::string bar(size_t(filled), '#');
        bar.resize(width, '.');
        double eta = rate > 0 ? (total - done) / rate : -1;
        std::snprintf(line, sizeof(line), "\r%-10s [%s] %llu/%llu %3d%% %8.1f img/s ETA %s ", stage,
                      bar.c_str(), (unsigned long long)done, (unsigned long long)total,
                      int(100.0 * done / total), rate, hms(eta).c_str());
    } else {
        std::snprintf(line, sizeof(line), "\r%-10s %llu %8.1f/s ", stage, (unsigned long long)done, rate);
    }
    std::fputs(line, stderr);
    std::fflush(stderr);
    line_open_ = true;
    return !interrupted();
}

void ProgressBar::log(const char* level, const char* message) {
    if (std::string(level) == "info" && !verbose_) return;
    finish();
    std::fprintf(stderr, "vislint: %s: %s\n", level, vislint::printable(message).c_str());
}

} // namespace vislint::cli
