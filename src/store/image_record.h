// The per-image state kept in the work dir (one row of the `images` table).
#pragma once

#include <cstdint>
#include <string>

#include "hash/hashes.h"
#include "hash/small_copy.h"
#include "quality/stats.h"
#include "vislint/status.h"

namespace vislint::store {

struct ImageRecord {
    int64_t id = 0;
    std::string path;       // the item: a file, or "file#box_id" for an object crop
    std::string source;     // the file to read when it is not `path` (object crops)
    std::string box;        // object crops: "x,y,w,h" in displayed pixels (before the margin)
    int64_t file_size = -1; // -1 when the file could not be stat'ed
    int64_t mtime_ns = 0;
    ImageStatus status;
    std::string format;     // content format ("jpeg", ...), "unknown" when not recognised
    std::string ext_format; // format the extension claims, "unknown" for other extensions
    int width = 0, height = 0, channels = 0, bit_depth = 0, orientation = 1;
    quality::ImageStats stats;
    hash::Hash128 file_hash, pixel_hash;
    uint64_t phash = 0, dhash = 0;
    hash::SmallThumb small_thumb; // small images only (hash/small_copy.h); its own table
    hash::VariantHashes variants; // hashes of transformed views
    bool has_variants = false;    // `variants` holds them (computed only in runs with embeddings)
    bool has_pixels = false; // decoded: stats and hashes are valid
    bool has_embedding = false; // its row in features.npy holds its embedding
    // Its hashes and vector are in the saved hash pairs and kNN graph (images.derived, set by the
    // derivation; every rewrite of the row, which INSERT OR REPLACE does, clears it).
    bool derived = false;
    int stored_grayscale = -1; // images.is_grayscale as the last derivation set it; -1 = not set
};

} // namespace vislint::store
