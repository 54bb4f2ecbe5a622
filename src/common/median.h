#pragma once

#include <algorithm>
#include <vector>

namespace vislint {

// The upper median (element n/2 in sorted order); 0 for an empty vector. Takes a copy.
inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    return v[mid];
}

} // namespace vislint
