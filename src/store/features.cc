#include "store/features.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

#include <cstring>
#include <filesystem>

#include <opencv2/core.hpp>

#include "vislint/status.h"

namespace vislint::store {
namespace {

constexpr size_t kHeaderSize = 128;

std::string header(int64_t rows, int dim) {
    std::string dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                       ", " + std::to_string(dim) + "), }";
    std::string h = "\x93NUMPY";
    h += char(1);
    h += char(0);
    const size_t len = kHeaderSize - 10;
    h += char(len & 0xFF);
    h += char(len >> 8);
    dict.resize(len - 1, ' ');
    return h + dict + "\n";
}

std::pair<int64_t, int> parse_shape(int fd) {
    char buf[kHeaderSize + 1] = {0};
    if (::pread(fd, buf, kHeaderSize, 0) != ssize_t(kHeaderSize)) return {0, 0};
    if (std::memcmp(buf, "\x93NUMPY", 6) != 0) return {0, 0};
    const char* dict = buf + 10; // after magic, version and header length (which contain NULs)
    if (std::strstr(dict, "'<f2'") == nullptr) return {0, 0};
    const char* shape = std::strstr(dict, "'shape': (");
    if (!shape) return {0, 0};
    long long rows = 0;
    int dim = 0;
    if (std::sscanf(shape, "'shape': (%lld, %d)", &rows, &dim) != 2) return {0, 0};
    return {rows, dim};
}

std::pair<int64_t, int> parse_shape(FILE* f) { return parse_shape(fileno(f)); }

bool pwrite_all(int fd, const void* data, size_t size, off_t off) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::pwrite(fd, p, size, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= size_t(n);
        off += n;
    }
    return true;
}

} // namespace

FeatureFile::FeatureFile(const std::string& path, int dim, bool reset) : path_(path), dim_(dim) {
    if (!reset) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd_ >= 0) {
            auto [rows, d] = parse_shape(fd_);
            if (d != dim) {
                ::close(fd_);
                fd_ = -1;
            } else {
                rows_ = rows;
            }
        }
    }
    if (fd_ < 0) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) throw Error("cannot write " + path + ": " + std::strerror(errno));
        rows_ = 0;
        write_header(0);
    }
}

FeatureFile::~FeatureFile() {
    if (fd_ >= 0) ::close(fd_);
}

void FeatureFile::write_header(int64_t rows) {
    std::string h = header(rows, dim_);
    if (!pwrite_all(fd_, h.data(), h.size(), 0))
        throw Error("cannot write " + path_ + ": " + std::strerror(errno));
}

void FeatureFile::write_row(int64_t id, const float* values) {
    cv::Mat src(1, dim_, CV_32F, const_cast<float*>(values)), half;
    src.convertTo(half, CV_16F);
    const off_t off = off_t(kHeaderSize + size_t(id) * dim_ * 2);
    if (!pwrite_all(fd_, half.data, size_t(dim_) * 2, off))
        throw Error("cannot write " + path_ + ": " + std::strerror(errno));
    pending_rows_ = std::max(pending_rows_, id + 1);
}

void FeatureFile::write_rows(int64_t first, int64_t count, const float* values) {
    if (count <= 0) return;
    cv::Mat src(1, int(count * dim_), CV_32F, const_cast<float*>(values)), half;
    src.convertTo(half, CV_16F);
    const off_t off = off_t(kHeaderSize + size_t(first) * dim_ * 2);
    if (!pwrite_all(fd_, half.data, size_t(count) * dim_ * 2, off))
        throw Error("cannot write " + path_ + ": " + std::strerror(errno));
    pending_rows_ = std::max(pending_rows_, first + count);
}

void FeatureFile::zero_row(int64_t id) {
    std::vector<float> zeros(size_t(dim_), 0.f);
    write_row(id, zeros.data());
}

void FeatureFile::sync() {
    // The header first claims the rows, then both reach the disk together: a reader that sees
    // the DB's commit (which follows) finds every committed row inside the shape.
    if (pending_rows_ > rows_) {
        rows_ = pending_rows_;
        write_header(rows_);
    }
    if (::fdatasync(fd_) != 0) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
}

void FeatureFile::close(int64_t rows) {
    rows_ = pending_rows_ = rows;
    write_header(rows);
    const off_t size = off_t(kHeaderSize + size_t(rows) * dim_ * 2);
    if (::ftruncate(fd_, size) != 0) throw Error("cannot resize " + path_ + ": " + std::strerror(errno));
    if (::fdatasync(fd_) != 0) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
}

std::pair<int64_t, int> feature_file_shape(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return {0, 0};
    auto s = parse_shape(f);
    std::fclose(f);
    return s;
}

FeatureReader::FeatureReader(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("cannot read " + path + ": " + std::strerror(errno));
    const auto [rows, d] = parse_shape(fd);
    struct stat st {};
    const bool stat_ok = ::fstat(fd, &st) == 0;
    if (d <= 0 || rows < 0) {
        ::close(fd);
        throw Error(path + " is not a float16 features file");
    }
    const size_t need = kHeaderSize + size_t(rows) * size_t(d) * 2;
    if (!stat_ok || size_t(st.st_size) < need) {
        ::close(fd);
        throw Error(path + " is truncated: its header says " + std::to_string(rows) + " x " +
                    std::to_string(d));
    }
    rows_ = rows;
    dim_ = d;
    map_size_ = need;
    void* p = ::mmap(nullptr, map_size_, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd); // the mapping keeps the file
    if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(err));
    map_ = p;
}

FeatureReader::~FeatureReader() {
    if (map_) ::munmap(map_, map_size_);
}

FeatureReader::FeatureReader(FeatureReader&& o) noexcept
    : path_(std::move(o.path_)), rows_(o.rows_), dim_(o.dim_), map_(o.map_), map_size_(o.map_size_) {
    o.map_ = nullptr;
}

void FeatureReader::release_pages() const {
    // MADV_DONTNEED on a shared read-only file mapping only unmaps the pages from this process;
    // they stay in the page cache, and a later read maps them again without I/O.
    if (map_) ::madvise(map_, map_size_, MADV_DONTNEED);
}

void FeatureReader::read(const int64_t* ids, int64_t count, float* out) const {
    const auto* base = static_cast<const uint16_t*>(map_) + kHeaderSize / 2;
    for (int64_t i = 0; i < count; ++i) {
        if (ids[i] < 0 || ids[i] >= rows_) throw Error(path_ + " has no row " + std::to_string(ids[i]));
        const cv::Mat half(1, dim_, CV_16F, const_cast<uint16_t*>(base + size_t(ids[i]) * dim_));
        cv::Mat dst(1, dim_, CV_32F, out + i * dim_);
        half.convertTo(dst, CV_32F);
    }
}

std::vector<float> read_feature_rows(const std::string& path, const std::vector<int64_t>& ids, int* dim) {
    const FeatureReader reader(path);
    *dim = reader.dim();
    std::vector<float> out(ids.size() * size_t(reader.dim()));
    reader.read(ids.data(), int64_t(ids.size()), out.data());
    return out;
}

std::vector<int64_t> bad_feature_rows(const std::string& path, const std::vector<int64_t>& ids) {
    std::vector<int64_t> bad;
    if (ids.empty()) return bad;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("cannot read " + path + ": " + std::strerror(errno));
    auto [rows, d] = parse_shape(fd);
    std::vector<uint16_t> buf(size_t(std::max(d, 1)));
    cv::Mat half(1, d, CV_16F, buf.data()), row;
    for (int64_t id : ids) {
        const off_t off = off_t(kHeaderSize + size_t(id) * d * 2);
        if (d <= 0 || id >= rows || ::pread(fd, buf.data(), size_t(d) * 2, off) != ssize_t(d) * 2) {
            bad.push_back(id);
            continue;
        }
        half.convertTo(row, CV_32F);
        double norm = 0;
        bool finite = true;
        for (int j = 0; j < d; ++j) {
            const float v = row.at<float>(0, j);
            finite = finite && std::isfinite(v);
            norm += double(v) * v;
        }
        // Rows are L2-normalised before the float16 conversion, which keeps the norm within ~1e-3.
        if (!finite || std::abs(std::sqrt(norm) - 1.0) > 0.01) bad.push_back(id);
    }
    ::close(fd);
    return bad;
}

} // namespace vislint::store
