#pragma once

#include <string>
#include <vector>

namespace vislint {

// Issue type names, identical in the database, the CLI and Python.
inline const std::vector<std::string>& issue_types() {
    static const std::vector<std::string> kTypes = {
        "broken",        "wrong_extension", "exact_duplicate",  "near_duplicate",
        "outlier",       "label_issue",     "leak",             "blurry",
        "dark",          "bright",          "low_information",  "grayscale",
        "odd_aspect_ratio", "odd_size"};
    return kTypes;
}

inline bool is_issue_type(const std::string& name) {
    for (const auto& t : issue_types())
        if (t == name) return true;
    return false;
}

} // namespace vislint
