// Reading a user's embeddings matrix from a NumPy .npy file (format 1.0 / 2.0 / 3.0): 2-D,
// C order, little-endian float16 or float32. The file is memory-mapped read-only; rows are
// converted to float32 on demand, so a 10 M x 1280 matrix is never held in memory.
#pragma once

#include <cstdint>
#include <string>

namespace vislint::io {

class NpyMatrix {
public:
    // Throws vislint::Error naming `path` and what is wrong: missing or unreadable, not an .npy
    // file, not 2-D, Fortran order, a dtype other than float16 / float32 (named), or shorter
    // than its header says.
    explicit NpyMatrix(const std::string& path);
    ~NpyMatrix();
    NpyMatrix(const NpyMatrix&) = delete;
    NpyMatrix& operator=(const NpyMatrix&) = delete;

    int64_t rows() const { return rows_; }
    int cols() const { return cols_; }
    const std::string& dtype() const { return dtype_; } // "float16" or "float32"
    // Rows [first, first + count) as float32 into out (count x cols). The whole pages of the
    // mapping that the read covered are unmapped again afterwards (they stay in the page cache).
    // REQUIRES: 0 <= first, first + count <= rows().
    void read(int64_t first, int64_t count, float* out) const;

private:
    std::string path_;
    int64_t rows_ = 0;
    int cols_ = 0;
    std::string dtype_;
    size_t data_offset_ = 0;
    void* map_ = nullptr;
    size_t map_size_ = 0;
};

} // namespace vislint::io
