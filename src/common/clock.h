// Wall-clock timestamps for run.json and the report.
#pragma once

#include <ctime>
#include <string>

namespace vislint {

// The current UTC time as ISO 8601, e.g. "2026-11-28T19:00:00Z".
inline std::string now_iso8601() {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buf;
}

} // namespace vislint
