// Decoding one image from its bytes. The only place that turns image files into pixels.
//
// JPEG goes through libjpeg-turbo with DCT-domain scaling: the decoder produces the smallest
// scaled image (1/8, 1/4, 3/8, ... of full size) whose longer side still covers the working
// size, which is several times faster than a full decode of a large photo. Other formats go
// through OpenCV (PNG, BMP, TIFF, still WebP, PNM), libwebp (animated WebP, first frame) or giflib
// (GIF, first frame; later frames are checked for completeness).
//
// Normalisation ("what the analysis sees"):
//  - EXIF orientation is applied for JPEG; width/height are reported as displayed.
//  - 16-bit samples are scaled to 8 bits (v / 257); float TIFFs are read as 0..1 and scaled.
//  - Grayscale stays 1 channel; alpha stays a 4th channel in `pixels` and is composited over
//    white in working_image(), so a transparent clip-art background reads as white paper.
// Thread-safe, and every decode is independent of every other: no decoder state is reused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "io/formats.h"
#include "vislint/status.h"

namespace vislint::io {

// The default per-image memory limit (DecodeOptions::max_bytes).
constexpr int64_t kDefaultMaxImageBytes = int64_t(512) << 20;

struct DecodeOptions {
    int64_t max_pixels = 100'000'000; // refuse width x height above this, before allocating
    // Refuse an image whose decode is estimated (from its header: size, channels, bit depth,
    // progressive JPEG coefficients, GIF canvas) to allocate more than this many bytes.
    int64_t max_bytes = kDefaultMaxImageBytes;
    int working_side = 256;           // longest side the analysis needs
};

struct DecodedImage {
    Format format = Format::kUnknown;
    int width = 0, height = 0; // full-resolution size as displayed (after EXIF orientation)
    int channels = 0;          // channels as stored: 1 gray, 3 colour, 4 colour + alpha
    int bit_depth = 8;         // bits per sample as stored (8, 16 or 32)
    int orientation = 1;       // EXIF orientation that was applied (1 = none)
    cv::Mat pixels;            // 8-bit, 1/3/4 channels (BGR order), at decode resolution
};

// Reads a whole regular file of at most `max_bytes` bytes (<= 0: no limit). Never blocks on a
// FIFO and never reads a device. On failure sets `status` (unreadable with the system's reason,
// not_regular_file, or too_large) and returns false.
bool read_file(const std::string& path, int64_t max_bytes, std::vector<uint8_t>* bytes, ImageStatus* status);

// Decodes `size` bytes. On failure returns a non-ok status (truncated / corrupt / unsupported /
// too_large / empty) and leaves `out->pixels` empty; never throws for bad data.
ImageStatus decode_image(const uint8_t* data, size_t size, const DecodeOptions& options,
                         DecodedImage* out);

// The crop of an object box: `box` is "x,y,w,h" in displayed pixels; `margin` x the box side is
// added on each side and the result is clipped to the image (decoded pixels may be scaled: the
// box is mapped onto them). `out` gets the crop, its width and height those of the crop. Returns
// a corrupt status (and leaves `out` alone) when the box is malformed or lies outside the image.
// REQUIRES: !image.pixels.empty().
ImageStatus crop_box(const DecodedImage& image, const std::string& box, double margin, DecodedImage* out);

// 8-bit BGR image for analysis: alpha composited over white, gray expanded to 3 channels,
// downscaled (INTER_AREA) so the longer side is at most `working_side`. Smaller images are not
// upscaled. REQUIRES: !image.pixels.empty().
cv::Mat working_image(const DecodedImage& image, int working_side);

} // namespace vislint::io
