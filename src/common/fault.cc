#include "common/fault.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace vislint {
namespace {

struct Fault {
    std::string stage;
    long long at = 0; // 0 = no fault configured
    bool sleep = false;
    std::atomic<long long> calls{0};

    Fault() {
        const char* env = std::getenv("VISLINT_FAULT");
        if (!env || !*env) return;
        std::string s = env;
        size_t colon = s.find(':');
        if (colon == std::string::npos) return;
        stage = s.substr(0, colon);
        std::string rest = s.substr(colon + 1);
        size_t colon2 = rest.find(':');
        sleep = colon2 != std::string::npos && rest.substr(colon2 + 1) == "sleep";
        at = std::atoll(rest.substr(0, colon2).c_str());
    }
};

Fault& fault() {
    static Fault f;
    return f;
}

} // namespace

void fault_point(const char* stage) {
    Fault& f = fault();
    if (f.at <= 0 || f.stage != stage) return;
    const long long n = ++f.calls;
    if (n < f.at) return;
    if (f.sleep) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return;
    }
    std::abort();
}

int fault_commit_every() {
    static const int n = [] {
        const char* env = std::getenv("VISLINT_FAULT_COMMIT_EVERY");
        return env ? std::max(0, std::atoi(env)) : 0;
    }();
    return n;
}

} // namespace vislint
