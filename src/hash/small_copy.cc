#include "hash/small_copy.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace vislint::hash {

namespace {

cv::Mat as_mat(const SmallThumb& t) {
    return cv::Mat(t.height, t.width, CV_8UC1, const_cast<uint8_t*>(t.pixels.data()));
}

} // namespace

SmallThumb small_thumb(const cv::Mat& gray) {
    SmallThumb t;
    if (!is_small_image(gray.cols, gray.rows)) return t;
    t.width = gray.cols;
    t.height = gray.rows;
    t.pixels.reserve(gray.total());
    for (int y = 0; y < gray.rows; ++y) t.pixels.insert(t.pixels.end(), gray.ptr(y), gray.ptr(y) + gray.cols);
    return t;
}

namespace {

// Pearson's r of two equal-sized 8-bit windows (exact integer sums: 64 x 64 x 255^2 < 2^31);
// 0 when either has no variance.
double correlation(const cv::Mat& x, const cv::Mat& y) {
    int64_t sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (int r = 0; r < x.rows; ++r) {
        const uint8_t* a = x.ptr<uint8_t>(r);
        const uint8_t* b = y.ptr<uint8_t>(r);
        int32_t rx = 0, ry = 0, rxx = 0, ryy = 0, rxy = 0;
        for (int c = 0; c < x.cols; ++c) {
            const int32_t u = a[c], v = b[c];
            rx += u;
            ry += v;
            rxx += u * u;
            ryy += v * v;
            rxy += u * v;
        }
        sx += rx, sy += ry, sxx += rxx, syy += ryy, sxy += rxy;
    }
    const double n = double(x.total());
    const double vx = double(sxx) - double(sx) * double(sx) / n, vy = double(syy) - double(sy) * double(sy) / n;
    if (vx < 0.5 || vy < 0.5) return 0;
    return (double(sxy) - double(sx) * double(sy) / n) / std::sqrt(vx * vy);
}

} // namespace

double small_copy_correlation(const SmallThumb& a, const SmallThumb& b) {
    const int w = std::min(a.width, b.width), h = std::min(a.height, b.height);
    auto prepare = [&](const SmallThumb& t) {
        cv::Mat m = as_mat(t);
        if (t.width == w && t.height == h) return m;
        cv::Mat out;
        cv::resize(m, out, cv::Size(w, h), 0, 0, cv::INTER_AREA);
        return out;
    };
    const cv::Mat x = prepare(a), y = prepare(b);
    cv::Mat mirrored;
    cv::flip(y, mirrored, 1);
    const cv::Mat* views[2] = {&y, &mirrored};
    // Shifts only where at least 3 x 3 pixels overlap.
    const int r = (w > 3 && h > 3) ? 1 : 0;
    double best = 0;
    for (const cv::Mat* view : views)
        for (int dy = -r; dy <= r; ++dy)
            for (int dx = -r; dx <= r; ++dx) {
                const cv::Size size(w - std::abs(dx), h - std::abs(dy));
                const cv::Rect rx(cv::Point(std::max(0, dx), std::max(0, dy)), size);
                const cv::Rect ry(cv::Point(std::max(0, -dx), std::max(0, -dy)), size);
                best = std::max(best, correlation(x(rx), (*view)(ry)));
            }
    return std::min(1.0, best);
}

} // namespace vislint::hash
