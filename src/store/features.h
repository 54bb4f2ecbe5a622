// features.npy: the embeddings of a work dir, float16, shape (rows, dim), row i = image id i, so
// `numpy.load(path, mmap_mode="r")[i]` is image i's embedding. Rows of broken images and of ids
// no longer in the images table are zero. The header has a fixed size (128 bytes) so rows can be
// written in any order while the scan runs; the shape is finalised by close().
#pragma once

#include <cstdint>
#include <cstdio>
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
    void zero_row(int64_t id);
    // Writes the final header with `rows` rows and truncates the file to match.
    void close(int64_t rows);

private:
    std::string path_;
    int dim_;
    FILE* f_ = nullptr;
};

// Reads rows `ids` of a features.npy as float32 (ids.size() x dim). Throws vislint::Error.
std::vector<float> read_feature_rows(const std::string& path, const std::vector<int64_t>& ids, int* dim);

// Rows and dim from the header; {0, 0} when the file is missing.
std::pair<int64_t, int> feature_file_shape(const std::string& path);

} // namespace vislint::store
