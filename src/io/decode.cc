#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include "io/decode.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <gif_lib.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <turbojpeg.h>

namespace vislint::io {
namespace {

ImageStatus fail(StatusCode code, std::string message) {
    return ImageStatus::make(code, std::move(message));
}

ImageStatus check_pixels(int64_t w, int64_t h, int64_t max_pixels) {
    if (w <= 0 || h <= 0) return fail(StatusCode::kCorrupt, "header gives an empty size");
    if (w * h > max_pixels) {
        return fail(StatusCode::kTooLarge,
                    std::to_string(w) + "x" + std::to_string(h) + " = " +
                        std::to_string(w * h) + " pixels exceeds the limit of " +
                        std::to_string(max_pixels) + " (--max-pixels)");
    }
    return {};
}

cv::Mat apply_orientation(const cv::Mat& m, int orientation) {
    cv::Mat out;
    switch (orientation) {
    case 2: cv::flip(m, out, 1); break;
    case 3: cv::rotate(m, out, cv::ROTATE_180); break;
    case 4: cv::flip(m, out, 0); break;
    case 5: cv::transpose(m, out); break;
    case 6: cv::rotate(m, out, cv::ROTATE_90_CLOCKWISE); break;
    case 7: cv::transpose(m, out); cv::rotate(out, out, cv::ROTATE_180); break;
    case 8: cv::rotate(m, out, cv::ROTATE_90_COUNTERCLOCKWISE); break;
    default: return m;
    }
    return out;
}

// Converts any depth to 8 bits, keeping the channel count (2-channel gray+alpha becomes BGRA).
cv::Mat to_8bit(const cv::Mat& m, int* bit_depth) {
    cv::Mat out = m;
    switch (m.depth()) {
    case CV_8U: *bit_depth = 8; break;
    case CV_8S: *bit_depth = 8; m.convertTo(out, CV_8U, 1, 128); break;
    case CV_16U: *bit_depth = 16; m.convertTo(out, CV_8U, 1.0 / 257.0); break;
    case CV_16S: *bit_depth = 16; m.convertTo(out, CV_8U, 1.0 / 257.0, 128); break;
    case CV_32F:
    case CV_64F: *bit_depth = m.depth() == CV_32F ? 32 : 64; m.convertTo(out, CV_8U, 255.0); break;
    default: *bit_depth = 32; m.convertTo(out, CV_8U, 1.0 / 16843009.0); break;
    }
    if (out.channels() == 2) {
        std::vector<cv::Mat> ga;
        cv::split(out, ga);
        cv::merge(std::vector<cv::Mat>{ga[0], ga[0], ga[0], ga[1]}, out);
    }
    return out;
}

struct TjHandle {
    tjhandle h = tjInitDecompress();
    ~TjHandle() { if (h) tjDestroy(h); }
};

ImageStatus decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& opt,
                        DecodedImage* out, bool* use_fallback) {
    thread_local TjHandle tj;
    if (!tj.h) return fail(StatusCode::kCorrupt, "libjpeg-turbo could not be initialised");
    unsigned char* buf = const_cast<unsigned char*>(data);
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(tj.h, buf, (unsigned long)size, &w, &h, &subsamp, &colorspace) != 0) {
        std::string msg = tjGetErrorStr2(tj.h);
        if (!has_end_marker(Format::kJpeg, data, size))
            return fail(StatusCode::kTruncated, "JPEG data ends inside the header (" + msg + ")");
        return fail(StatusCode::kCorrupt, "bad JPEG header: " + msg);
    }
    if (ImageStatus s = check_pixels(w, h, opt.max_pixels); !s.ok()) return s;
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        *use_fallback = true; // TurboJPEG cannot convert CMYK to BGR; OpenCV's libjpeg path can
        return {};
    }
    // Smallest DCT scaling whose longer side still covers the working size.
    int n_factors = 0;
    tjscalingfactor* factors = tjGetScalingFactors(&n_factors);
    int longer = std::max(w, h);
    tjscalingfactor best{1, 1};
    int best_side = longer;
    for (int i = 0; i < n_factors; ++i) {
        const tjscalingfactor& f = factors[i];
        if (f.num > f.denom) continue;
        int side = TJSCALED(longer, f);
        if (side >= opt.working_side && side < best_side) {
            best = f;
            best_side = side;
        }
    }
    int sw = TJSCALED(w, best), sh = TJSCALED(h, best);
    bool gray = colorspace == TJCS_GRAY;
    cv::Mat m(sh, sw, gray ? CV_8UC1 : CV_8UC3);
    int rc = tjDecompress2(tj.h, buf, (unsigned long)size, m.data, sw, int(m.step), sh,
                           gray ? TJPF_GRAY : TJPF_BGR, 0);
    if (rc != 0) {
        std::string msg = tjGetErrorStr2(tj.h);
        bool warning = tjGetErrorCode(tj.h) == TJERR_WARNING;
        bool premature = msg.find("Premature end") != std::string::npos;
        if (premature || !has_end_marker(Format::kJpeg, data, size))
            return fail(StatusCode::kTruncated, "JPEG data ends before the image does (" + msg + ")");
        // Other warnings (e.g. extraneous bytes before a marker) leave a complete image that
        // viewers show normally, so the image is analysed.
        if (!warning) return fail(StatusCode::kCorrupt, "JPEG decoder: " + msg);
    }
    out->orientation = jpeg_exif_orientation(data, size);
    out->pixels = apply_orientation(m, out->orientation);
    bool swap = out->orientation >= 5;
    out->width = swap ? h : w;
    out->height = swap ? w : h;
    out->channels = gray ? 1 : 3;
    out->bit_depth = 8;
    return {};
}

struct GifReader {
    const uint8_t* data;
    size_t size;
    size_t pos = 0;
};

int gif_read(GifFileType* gif, GifByteType* dst, int n) {
    auto* r = static_cast<GifReader*>(gif->UserData);
    size_t take = std::min<size_t>(size_t(n), r->size - r->pos);
    std::memcpy(dst, r->data + r->pos, take);
    r->pos += take;
    return int(take);
}

ImageStatus decode_gif(const uint8_t* data, size_t size, const DecodeOptions& opt,
                       DecodedImage* out) {
    GifReader reader{data, size};
    int err = 0;
    GifFileType* gif = DGifOpen(&reader, gif_read, &err);
    if (!gif) return fail(StatusCode::kCorrupt, std::string("GIF: ") + GifErrorString(err));
    struct Closer {
        GifFileType* g;
        ~Closer() { int e; DGifCloseFile(g, &e); }
    } closer{gif};
    auto gif_fail = [&](const char* what) {
        const char* msg = GifErrorString(gif->Error);
        std::string text = std::string(what) + ": " + (msg ? msg : "unknown error");
        if (!has_end_marker(Format::kGif, data, size))
            return fail(StatusCode::kTruncated, "GIF data ends early (" + text + ")");
        return fail(StatusCode::kCorrupt, "GIF " + text);
    };
    if (ImageStatus s = check_pixels(gif->SWidth, gif->SHeight, opt.max_pixels); !s.ok()) return s;
    int transparent = -1;
    GifRecordType type;
    do {
        if (DGifGetRecordType(gif, &type) == GIF_ERROR) return gif_fail("reading record");
        if (type == EXTENSION_RECORD_TYPE) {
            int code;
            GifByteType* ext;
            if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) return gif_fail("extension");
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1))
                transparent = ext[4];
            while (ext) {
                if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) return gif_fail("extension");
            }
        } else if (type == IMAGE_DESC_RECORD_TYPE) {
            if (DGifGetImageDesc(gif) == GIF_ERROR) return gif_fail("image descriptor");
            const GifImageDesc& d = gif->Image;
            ColorMapObject* cmap = d.ColorMap ? d.ColorMap : gif->SColorMap;
            if (!cmap) return fail(StatusCode::kCorrupt, "GIF has no colour map");
            if (d.Width <= 0 || d.Height <= 0 ||
                int64_t(d.Width) * d.Height > opt.max_pixels)
                return fail(StatusCode::kCorrupt, "GIF frame has an invalid size");
            std::vector<GifPixelType> line(d.Width);
            cv::Mat canvas(gif->SHeight, gif->SWidth, CV_8UC4, cv::Scalar(255, 255, 255, 0));
            std::vector<int> rows(d.Height);
            if (d.Interlace) {
                int k = 0;
                const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
                for (int pass = 0; pass < 4; ++pass)
                    for (int y = start[pass]; y < d.Height; y += step[pass]) rows[k++] = y;
            } else {
                for (int y = 0; y < d.Height; ++y) rows[y] = y;
            }
            for (int i = 0; i < d.Height; ++i) {
                if (DGifGetLine(gif, line.data(), d.Width) == GIF_ERROR) return gif_fail("pixel data");
                int y = d.Top + rows[i];
                if (y < 0 || y >= canvas.rows) continue;
                auto* row = canvas.ptr<cv::Vec4b>(y);
                for (int x = 0; x < d.Width; ++x) {
                    int cx = d.Left + x;
                    if (cx < 0 || cx >= canvas.cols || line[x] == transparent) continue;
                    if (line[x] >= cmap->ColorCount) continue;
                    const GifColorType& c = cmap->Colors[line[x]];
                    row[cx] = cv::Vec4b(c.Blue, c.Green, c.Red, 255);
                }
            }
            out->width = canvas.cols;
            out->height = canvas.rows;
            out->channels = transparent >= 0 ? 4 : 3;
            out->bit_depth = 8;
            if (transparent >= 0) {
                out->pixels = canvas;
            } else {
                cv::cvtColor(canvas, out->pixels, cv::COLOR_BGRA2BGR);
            }
            return {};
        }
    } while (type != TERMINATE_RECORD_TYPE);
    return fail(StatusCode::kCorrupt, "GIF contains no image");
}

ImageStatus decode_opencv(const uint8_t* data, size_t size, Format format, const DecodeOptions& opt,
                          int ignore_orientation_flags, DecodedImage* out) {
    cv::Mat m;
    std::string error;
    try {
        m = cv::imdecode(cv::Mat(1, int(size), CV_8UC1, const_cast<uint8_t*>(data)),
                         ignore_orientation_flags);
    } catch (const cv::Exception& e) {
        error = e.what();
    }
    if (m.empty()) {
        std::string name = format_name(format);
        if (!has_end_marker(format, data, size))
            return fail(StatusCode::kTruncated, name + " data ends before the image does");
        std::string why = error.empty() ? "the " + name + " decoder rejected the data" : error;
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        return fail(StatusCode::kCorrupt, why);
    }
    if (ImageStatus s = check_pixels(m.cols, m.rows, opt.max_pixels); !s.ok()) return s;
    out->channels = m.channels() == 2 ? 4 : m.channels();
    out->pixels = to_8bit(m, &out->bit_depth);
    out->width = m.cols;
    out->height = m.rows;
    return {};
}

} // namespace

ImageStatus decode_image(const uint8_t* data, size_t size, const DecodeOptions& opt,
                         DecodedImage* out) {
    *out = DecodedImage{};
    if (size == 0) return fail(StatusCode::kEmpty, "zero-byte file");
    Format format = sniff_format(data, size);
    out->format = format;
    if (format == Format::kUnknown) {
        char hex[3 * 8 + 1] = {0};
        size_t k = std::min<size_t>(size, 8);
        for (size_t i = 0; i < k; ++i) std::snprintf(hex + 3 * i, 4, "%02x ", data[i]);
        std::string h(hex);
        if (!h.empty()) h.pop_back();
        return fail(StatusCode::kUnsupported,
                    "content is not a supported image format (first bytes: " + h + ")");
    }
    if (format == Format::kJpeg) {
        bool fallback = false;
        ImageStatus s = decode_jpeg(data, size, opt, out, &fallback);
        if (!fallback) return s;
        int orientation = jpeg_exif_orientation(data, size);
        s = decode_opencv(data, size, format, opt, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION, out);
        if (s.ok() && orientation != 1) {
            out->orientation = orientation;
            out->pixels = apply_orientation(out->pixels, orientation);
            if (orientation >= 5) std::swap(out->width, out->height);
        }
        return s;
    }
    if (format == Format::kGif) return decode_gif(data, size, opt, out);
    Dimensions dims = read_dimensions(format, data, size);
    if (dims.known) {
        if (ImageStatus s = check_pixels(dims.width, dims.height, opt.max_pixels); !s.ok()) return s;
    }
    if (format == Format::kPng) {
        std::string damage = png_structure_error(data, size);
        if (!damage.empty()) {
            bool truncated = damage.rfind("truncated", 0) == 0;
            return fail(truncated ? StatusCode::kTruncated : StatusCode::kCorrupt,
                        damage.substr(damage.find(": ") + 2));
        }
    }
    return decode_opencv(data, size, format, opt, cv::IMREAD_UNCHANGED, out);
}

cv::Mat working_image(const DecodedImage& image, int working_side) {
    const cv::Mat& src = image.pixels;
    cv::Mat small = src;
    int longer = std::max(src.cols, src.rows);
    if (longer > working_side) {
        double s = double(working_side) / longer;
        cv::Size size(std::max(1, int(src.cols * s + 0.5)), std::max(1, int(src.rows * s + 0.5)));
        cv::resize(src, small, size, 0, 0, cv::INTER_AREA);
    }
    cv::Mat bgr;
    if (small.channels() == 1) {
        cv::cvtColor(small, bgr, cv::COLOR_GRAY2BGR);
    } else if (small.channels() == 4) {
        // Composite over white: out = a * c + (1 - a) * 255.
        bgr.create(small.size(), CV_8UC3);
        for (int y = 0; y < small.rows; ++y) {
            const auto* s = small.ptr<cv::Vec4b>(y);
            auto* d = bgr.ptr<cv::Vec3b>(y);
            for (int x = 0; x < small.cols; ++x) {
                int a = s[x][3];
                for (int c = 0; c < 3; ++c) d[x][c] = uchar((s[x][c] * a + 255 * (255 - a) + 127) / 255);
            }
        }
    } else {
        bgr = small;
    }
    return bgr;
}

bool read_file(const std::string& path, int64_t size_hint, std::vector<uint8_t>* bytes, ImageStatus* status) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        *status = ImageStatus::make(StatusCode::kUnreadable, std::strerror(errno));
        return false;
    }
    if (size_hint > 0) bytes->reserve(size_t(size_hint));
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes->insert(bytes->end(), buf, buf + n);
    bool error = std::ferror(f);
    int err = errno;
    std::fclose(f);
    if (error) {
        *status = ImageStatus::make(StatusCode::kUnreadable, std::string("read error: ") + std::strerror(err));
        return false;
    }
    return true;
}

ImageStatus crop_box(const DecodedImage& image, const std::string& box, double margin, DecodedImage* out) {
    double x = 0, y = 0, w = 0, h = 0;
    if (std::sscanf(box.c_str(), "%lf,%lf,%lf,%lf", &x, &y, &w, &h) != 4)
        return ImageStatus::make(StatusCode::kCorrupt, "bad box '" + box + "'");
    // Displayed pixels -> decoded pixels (identical unless the decoder scaled).
    const double sx = double(image.pixels.cols) / image.width, sy = double(image.pixels.rows) / image.height;
    const double mx = margin * w, my = margin * h;
    cv::Rect rect(cv::Point(int(std::floor((x - mx) * sx)), int(std::floor((y - my) * sy))),
                  cv::Point(int(std::ceil((x + w + mx) * sx)), int(std::ceil((y + h + my) * sy))));
    rect &= cv::Rect(0, 0, image.pixels.cols, image.pixels.rows);
    if (rect.empty()) return ImageStatus::make(StatusCode::kCorrupt, "box " + box + " lies outside the image");
    DecodedImage crop = image;
    crop.pixels = image.pixels(rect).clone();
    crop.width = rect.width;
    crop.height = rect.height;
    *out = std::move(crop);
    return ImageStatus{};
}

} // namespace vislint::io
