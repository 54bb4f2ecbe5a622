// Format sniffing and header parsing on raw file bytes. No decoding, no allocation of pixels:
// this is what lets the decoder refuse a decompression bomb before touching its pixel data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vislint::io {

enum class Format { kUnknown, kJpeg, kPng, kBmp, kTiff, kWebp, kGif, kPnm };

// "jpeg", "png", "bmp", "tiff", "webp", "gif", "pnm", or "unknown".
const char* format_name(Format format);

// The format the content is in, from its magic bytes.
Format sniff_format(const uint8_t* data, size_t size);

// The format a file's extension claims (case-insensitive); kUnknown for anything else.
Format format_from_extension(const std::string& path);

struct Dimensions {
    int64_t width = 0;
    int64_t height = 0;
    bool known = false; // false when the header is too short or malformed to tell
    int channels = 0;   // samples per pixel as decoded (palette PNG: 3 or 4); 0 when not read
    int bits = 0;       // bits per sample as stored; 0 when not read
    bool progressive = false; // JPEG: a progressive (multi-scan) frame
};

// Width and height as stored in the header (before any EXIF rotation), and where the format
// tells them, channels, bits per sample and (JPEG) progressive coding: what the decoder will
// allocate. For JPEG this is the first SOFn segment.
Dimensions read_dimensions(Format format, const uint8_t* data, size_t size);

// The EXIF Orientation tag (1..8) of a JPEG's APP1 segment, 1 when absent or unreadable.
int jpeg_exif_orientation(const uint8_t* data, size_t size);

// True when the stream's end marker is present (JPEG EOI, PNG IEND, GIF trailer). Used to tell
// a truncated file from a corrupt one when the decoder fails.
bool has_end_marker(Format format, const uint8_t* data, size_t size);

// Walks a PNG's chunks and checks each CRC, so damage is reported precisely ("chunk IDAT: CRC
// mismatch") and libpng never prints its own errors for it. Returns an empty string when the
// structure is sound; otherwise "truncated: ..." or "corrupt: ...".
std::string png_structure_error(const uint8_t* data, size_t size);

} // namespace vislint::io
