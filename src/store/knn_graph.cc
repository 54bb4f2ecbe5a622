#include "store/knn_graph.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "vislint/status.h"

namespace vislint::store {
namespace {

constexpr char kMagic[8] = {'V', 'L', 'K', 'N', 'N', 'G', '1', '\0'};

struct Header {
    char magic[8];
    uint64_t generation;
    int64_t n;
    int64_t k;
};

void write_all(int fd, const void* data, size_t bytes, const std::string& path) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
        const ssize_t w = ::write(fd, p, bytes);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw Error("cannot write " + path + ": " + std::strerror(errno));
        p += w;
        bytes -= size_t(w);
    }
}

bool read_all(int fd, void* data, size_t bytes) {
    char* p = static_cast<char*>(data);
    while (bytes > 0) {
        const ssize_t r = ::read(fd, p, bytes);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        bytes -= size_t(r);
    }
    return true;
}

} // namespace

void save_graph(const std::string& path, uint64_t generation, int64_t n, int k, const int64_t* ids_in,
                const float* sims) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw Error("cannot write " + tmp + ": " + std::strerror(errno));
    try {
        Header h{};
        std::memcpy(h.magic, kMagic, sizeof(kMagic));
        h.generation = generation;
        h.n = n;
        h.k = k;
        write_all(fd, &h, sizeof(h), tmp);
        std::vector<int32_t> ids;
        constexpr size_t kRows = 1 << 16;
        for (size_t r0 = 0; r0 < size_t(n); r0 += kRows) {
            const size_t m = std::min(kRows, size_t(n) - r0) * size_t(k);
            ids.assign(ids_in + r0 * size_t(k), ids_in + r0 * size_t(k) + m);
            write_all(fd, ids.data(), m * sizeof(int32_t), tmp);
        }
        write_all(fd, sims, size_t(n) * size_t(k) * sizeof(float), tmp);
        if (::fdatasync(fd) != 0) throw Error("cannot write " + tmp + ": " + std::strerror(errno));
    } catch (...) {
        ::close(fd);
        std::remove(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error("cannot write " + path + ": " + std::strerror(errno));
    }
}

bool load_graph(const std::string& path, SavedGraph* out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    Header h{};
    SavedGraph g;
    bool ok = read_all(fd, &h, sizeof(h)) && std::memcmp(h.magic, kMagic, sizeof(kMagic)) == 0 &&
              h.n >= 0 && h.k >= 1 && h.k <= 1000 && h.n < (int64_t(1) << 31);
    const off_t size = ok ? ::lseek(fd, 0, SEEK_END) : -1;
    ok = ok && size == off_t(sizeof(h) + size_t(h.n) * size_t(h.k) * 8) &&
         ::lseek(fd, sizeof(h), SEEK_SET) == off_t(sizeof(h));
    if (ok) {
        g.generation = h.generation;
        g.n = h.n;
        g.k = int(h.k);
        std::vector<int32_t> ids(size_t(h.n) * size_t(h.k));
        g.sims.resize(ids.size());
        ok = read_all(fd, ids.data(), ids.size() * sizeof(int32_t)) &&
             read_all(fd, g.sims.data(), g.sims.size() * sizeof(float));
        g.ids.assign(ids.begin(), ids.end());
        for (int64_t id : g.ids) ok = ok && id >= -1 && id < h.n;
    }
    ::close(fd);
    if (ok) *out = std::move(g);
    return ok;
}

} // namespace vislint::store
