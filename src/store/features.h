// features.npy: the embeddings of a work dir, float16, shape (rows, dim), row i = image id i, so
// `numpy.load(path, mmap_mode="r")[i]` is image i's embedding. Rows of broken images and of ids
// no longer in the images table are zero. The header has a fixed size (128 bytes) so rows can be
// written in any order while the scan runs. Rows go straight to the kernel (pwrite, no user-space
// buffer); sync() makes them durable and the header cover them, and the scan commits a row's
// has_embedding = 1 only after that (so a kill -9 never leaves a committed row without its
// vector). close() sets the final shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vislint::store {

inline const char* kFeaturesName = "features.npy";

class FeatureFile {
public:
    // Opens `path` for writing rows of `dim` floats. An existing file with another dim (or
    // `reset`) is discarded. Throws vislint::Error on I/O failure.
    FeatureFile(const std::string& path, int dim, bool reset);
    ~FeatureFile();
    FeatureFile(const FeatureFile&) = delete;
    FeatureFile& operator=(const FeatureFile&) = delete;

    void write_row(int64_t id, const float* values); // converts to float16
    // Rows first .. first + count - 1 from `values` (count x dim), in one write.
    void write_rows(int64_t first, int64_t count, const float* values);
    void zero_row(int64_t id);
    // Makes every row written so far durable (fdatasync) and the header's shape cover them.
    void sync();
    // Writes the final header with `rows` rows, truncates the file to match and syncs it.
    void close(int64_t rows);

private:
    void write_header(int64_t rows);

    std::string path_;
    int dim_;
    int fd_ = -1;
    int64_t rows_ = 0;         // rows the header claims
    int64_t pending_rows_ = 0; // rows the header must claim at the next sync()
};

// Ids among `ids` whose row is missing, not finite or not unit length (a row torn by a crash, or
// zero): a resumed scan re-analyses these instead of reusing them. Throws vislint::Error.
std::vector<int64_t> bad_feature_rows(const std::string& path, const std::vector<int64_t>& ids);

// A features.npy opened read-only and memory-mapped: rows as float32 on demand, so a scan never
// holds every embedding as float32 (10 M x 1280-d would be 51 GB). Thread-safe after
// construction; movable, not copyable. The rows are those of the header.
class FeatureReader {
public:
    // Throws vislint::Error naming `path` if it is missing, unreadable or not a float16 .npy.
    explicit FeatureReader(const std::string& path);
    ~FeatureReader();
    FeatureReader(FeatureReader&& other) noexcept;
    FeatureReader& operator=(FeatureReader&&) = delete;
    FeatureReader(const FeatureReader&) = delete;
    FeatureReader& operator=(const FeatureReader&) = delete;

    int64_t rows() const { return rows_; }
    int dim() const { return dim_; }
    // Rows ids[0..count) as float32 into out (count x dim). An id outside [0, rows) throws.
    void read(const int64_t* ids, int64_t count, float* out) const;
    // Drops this process's mapping of the pages read so far (they stay in the page cache): a
    // pass over a 10 M x 256 file would otherwise leave all 5 GB counted in the scan's RSS.
    // Not concurrently with read().
    void release_pages() const;

private:
    std::string path_;
    int64_t rows_ = 0;
    int dim_ = 0;
    void* map_ = nullptr;
    size_t map_size_ = 0;
};

// Reads rows `ids` of a features.npy as float32 (ids.size() x dim). Throws vislint::Error.
std::vector<float> read_feature_rows(const std::string& path, const std::vector<int64_t>& ids, int* dim);

// Rows and dim from the header; {0, 0} when the file is missing.
std::pair<int64_t, int> feature_file_shape(const std::string& path);

} // namespace vislint::store
