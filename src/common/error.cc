#include "vislint/status.h"

namespace vislint {

const char* status_code_name(StatusCode code) {
    switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kEmpty: return "empty";
    case StatusCode::kTruncated: return "truncated";
    case StatusCode::kCorrupt: return "corrupt";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kUnreadable: return "unreadable";
    case StatusCode::kTooLarge: return "too_large";
    case StatusCode::kNotRegularFile: return "not_regular_file";
    }
    return "unknown";
}

std::string ImageStatus::to_string() const {
    if (message.empty()) return status_code_name(code);
    return std::string(status_code_name(code)) + ": " + message;
}

} // namespace vislint
