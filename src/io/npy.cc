#include "io/npy.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <regex>

#include <opencv2/core.hpp>

#include "vislint/status.h"

namespace vislint::io {
namespace {

// The header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (10, 256), }.
struct Header {
    std::string descr;
    bool fortran = false;
    std::vector<int64_t> shape;
};

Header parse_header(const std::string& dict, const std::string& path) {
    auto fail = [&](const std::string& why) -> Header {
        throw Error(path + ": not a valid .npy header (" + why + ")");
    };
    Header h;
    std::smatch m;
    if (!std::regex_search(dict, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) return fail("no descr");
    h.descr = m[1];
    if (!std::regex_search(dict, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")))
        return fail("no fortran_order");
    h.fortran = m[1] == "True";
    if (!std::regex_search(dict, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) return fail("no shape");
    const std::string dims = m[1];
    const std::regex number(R"(\d+)");
    for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it)
        h.shape.push_back(std::stoll(it->str()));
    return h;
}

std::string dtype_name(const std::string& descr) {
    static const std::pair<const char*, const char*> names[] = {
        {"<f2", "float16"}, {"<f4", "float32"}, {"<f8", "float64"}, {">f4", "big-endian float32"},
        {">f2", "big-endian float16"}, {">f8", "big-endian float64"}, {"|u1", "uint8"},
        {"|i1", "int8"}, {"<i4", "int32"}, {"<i8", "int64"}, {"|b1", "bool"}};
    for (const auto& [d, n] : names)
        if (descr == d) return n;
    return "'" + descr + "'";
}

} // namespace

NpyMatrix::NpyMatrix(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error("cannot read embeddings file " + path + ": " + std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    char pre[12] = {0};
    const ssize_t got = ::pread(fd, pre, sizeof pre, 0);
    if (got < 10 || std::memcmp(pre, "\x93NUMPY", 6) != 0)
        throw Error(path + " is not a NumPy .npy file (write it with numpy.save)");
    const int major = static_cast<unsigned char>(pre[6]);
    size_t header_len = 0, prefix = 0;
    if (major == 1) {
        header_len = size_t(static_cast<unsigned char>(pre[8])) | size_t(static_cast<unsigned char>(pre[9])) << 8;
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (got < 12) throw Error(path + " is not a NumPy .npy file (truncated header)");
        for (int b = 0; b < 4; ++b) header_len |= size_t(static_cast<unsigned char>(pre[8 + b])) << (8 * b);
        prefix = 12;
    } else {
        throw Error(path + ": unsupported .npy format version " + std::to_string(major));
    }
    if (header_len > (1u << 20)) throw Error(path + ": not a valid .npy header (too long)");
    std::string dict(header_len, '\0');
    if (::pread(fd, dict.data(), header_len, off_t(prefix)) != ssize_t(header_len))
        throw Error(path + " is not a NumPy .npy file (truncated header)");
    const Header h = parse_header(dict, path);
    if (h.descr != "<f2" && h.descr != "<f4")
        throw Error(path + " holds " + dtype_name(h.descr) +
                    " values; embeddings must be float16 or float32 (e.g. numpy's astype(np.float32))");
    if (h.shape.size() != 2)
        throw Error(path + " has " + std::to_string(h.shape.size()) +
                    " dimension(s); embeddings must be a 2-D matrix (one row per item)");
    if (h.fortran) throw Error(path + " is in Fortran order; save it C-ordered (numpy.ascontiguousarray)");
    if (h.shape[1] < 1 || h.shape[1] > 65536)
        throw Error(path + ": each row must have 1 to 65536 values, got " + std::to_string(h.shape[1]));
    rows_ = h.shape[0];
    cols_ = int(h.shape[1]);
    dtype_ = h.descr == "<f2" ? "float16" : "float32";
    data_offset_ = prefix + header_len;
    const size_t elem = h.descr == "<f2" ? 2 : 4;
    map_size_ = data_offset_ + size_t(rows_) * size_t(cols_) * elem;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || size_t(st.st_size) < map_size_)
        throw Error(path + " is truncated: its header says " + std::to_string(rows_) + " x " +
                    std::to_string(cols_) + " " + dtype_);
    void* p = ::mmap(nullptr, map_size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(errno));
    map_ = p;
}

NpyMatrix::~NpyMatrix() {
    if (map_) ::munmap(map_, map_size_);
}

void NpyMatrix::read(int64_t first, int64_t count, float* out) const {
    const char* base = static_cast<const char*>(map_) + data_offset_;
    const size_t n = size_t(count) * size_t(cols_);
    const size_t item = dtype_ == "float32" ? 4 : 2;
    const char* begin = base + size_t(first) * cols_ * item;
    if (item == 4) {
        std::memcpy(out, begin, n * 4);
    } else {
        // Contiguous rows: one conversion (OpenCV uses F16C where the CPU has it).
        const cv::Mat half(1, int(n), CV_16F, const_cast<char*>(begin));
        cv::Mat dst(1, int(n), CV_32F, out);
        half.convertTo(dst, CV_32F);
    }
    // Readers stream the file batch by batch: unmap the whole pages just read (MADV_DONTNEED on
    // a read-only shared mapping; they stay in the page cache), so that a pass over a 25 GB
    // input does not count 25 GB in this process's RSS. Single rows span no whole page.
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (uintptr_t(begin) + page - 1) / page * page;
    const uintptr_t hi = (uintptr_t(begin) + n * item) / page * page;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

} // namespace vislint::io
