#include "io/decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <streambuf>
#include <string>

#include <gif_lib.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <png.h>
#include <turbojpeg.h>
#include <webp/demux.h>

namespace vislint::io {
namespace {

ImageStatus fail(StatusCode code, std::string message) {
    return ImageStatus::make(code, std::move(message));
}

// a * b, saturating at INT64_MAX (headers may declare sizes whose product overflows 64 bits).
int64_t mul_sat(int64_t a, int64_t b) {
    if (a <= 0 || b <= 0) return 0;
    return a > std::numeric_limits<int64_t>::max() / b ? std::numeric_limits<int64_t>::max() : a * b;
}

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

ImageStatus check_pixels(int64_t w, int64_t h, int64_t max_pixels) {
    if (w <= 0 || h <= 0) return fail(StatusCode::kCorrupt, "header gives an empty size");
    if (w > max_pixels / h) {
        const int64_t pixels = mul_sat(w, h);
        return fail(StatusCode::kTooLarge,
                    std::to_string(w) + "x" + std::to_string(h) + " = " +
                        (pixels == std::numeric_limits<int64_t>::max() ? std::string("more than 2^63")
                                                                        : std::to_string(pixels)) +
                        " pixels exceeds the limit of " + std::to_string(max_pixels) + " (--max-pixels)");
    }
    return {};
}

// The per-image memory rule (docs/reliability.md): the decoder's estimated peak allocation for
// this image must not exceed DecodeOptions::max_bytes.
ImageStatus check_memory(int64_t bytes, const DecodeOptions& opt, const std::string& what) {
    if (bytes <= opt.max_bytes) return {};
    return fail(StatusCode::kTooLarge, "decoding needs about " + mib(bytes) + " (" + what +
                                           "), more than the per-image limit of " + mib(opt.max_bytes) +
                                           " (--max-image-memory)");
}

// Estimated peak bytes of a libpng or OpenCV decode: the decoder's own buffer at the stored
// depth plus the 8-bit copy the analysis keeps.
int64_t buffer_and_copy_bytes(const Dimensions& d) {
    const int64_t channels = d.channels > 0 ? d.channels : 4;
    const int64_t sample = d.bits > 8 ? (d.bits + 7) / 8 : 1;
    return mul_sat(mul_sat(d.width, d.height), channels * (sample + 1));
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

// One TurboJPEG handle per decode: a handle reused after a fatal error (or after a stream that
// defined tables the next one relies on) makes the next image's result depend on the previous
// one's, so no decoder state is shared between images or threads.
struct TjHandle {
    tjhandle h = tjInitDecompress();
    ~TjHandle() { if (h) tjDestroy(h); }
};

bool contains_ci(const std::string& text, const char* needle) {
    std::string lower = text;
    for (char& c : lower) c = char(std::tolower((unsigned char)c));
    return lower.find(needle) != std::string::npos;
}

// Adobe CMYK JPEGs store inverted inks (255 = none), which is what TurboJPEG returns.
cv::Mat inverted_cmyk_to_bgr(const cv::Mat& cmyk) {
    cv::Mat bgr(cmyk.size(), CV_8UC3);
    for (int y = 0; y < cmyk.rows; ++y) {
        const uint8_t* s = cmyk.ptr<uint8_t>(y);
        cv::Vec3b* d = bgr.ptr<cv::Vec3b>(y);
        for (int x = 0; x < cmyk.cols; ++x, s += 4) {
            const int k = s[3];
            d[x] = cv::Vec3b(uchar((s[2] * k + 127) / 255), uchar((s[1] * k + 127) / 255),
                             uchar((s[0] * k + 127) / 255));
        }
    }
    return bgr;
}

ImageStatus decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& opt, DecodedImage* out) {
    TjHandle tj;
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
    const bool gray = colorspace == TJCS_GRAY;
    const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    // Output (+ the BGR copy of CMYK, + the rotated copy) and, for progressive JPEG, libjpeg's
    // whole-image coefficient buffer at full resolution (2 bytes per sample per component).
    Dimensions dims = read_dimensions(Format::kJpeg, data, size);
    const int64_t out_bytes = mul_sat(int64_t(sw) * sh, gray ? 2 : cmyk ? 10 : 6);
    const int64_t coef_bytes = dims.progressive ? mul_sat(int64_t(w) * h, 2 * std::max(1, dims.channels)) : 0;
    if (ImageStatus s = check_memory(out_bytes + coef_bytes, opt,
                                     dims.progressive ? "progressive JPEG" : "JPEG");
        !s.ok())
        return s;
    // Zeroed: on some damaged streams libjpeg leaves output rows unwritten, and uninitialised
    // pixels would make the image's hashes and stats differ from run to run.
    cv::Mat m = cv::Mat::zeros(sh, sw, gray ? CV_8UC1 : cmyk ? CV_8UC4 : CV_8UC3);
    const int flags = TJFLAG_LIMITSCANS; // a progressive JPEG of thousands of scans takes minutes
    int rc = tjDecompress2(tj.h, buf, (unsigned long)size, m.data, sw, int(m.step), sh,
                           gray ? TJPF_GRAY : cmyk ? TJPF_CMYK : TJPF_BGR, flags);
    if (rc != 0) {
        std::string msg = tjGetErrorStr2(tj.h);
        bool warning = tjGetErrorCode(tj.h) == TJERR_WARNING;
        if (contains_ci(msg, "scans"))
            return fail(StatusCode::kTooLarge, "progressive JPEG with too many scans (" + msg + ")");
        // libjpeg says "Premature end of JPEG file" or "premature end of data segment" (the
        // latter when an EOI marker was appended to cut data): both mean missing image data.
        if (contains_ci(msg, "premature end") || !has_end_marker(Format::kJpeg, data, size))
            return fail(StatusCode::kTruncated, "JPEG data ends before the image does (" + msg + ")");
        // Other warnings (e.g. extraneous bytes before a marker) leave a complete image that
        // viewers show normally, so the image is analysed.
        if (!warning) return fail(StatusCode::kCorrupt, "JPEG decoder: " + msg);
    }
    out->orientation = jpeg_exif_orientation(data, size);
    out->pixels = apply_orientation(cmyk ? inverted_cmyk_to_bgr(m) : m, out->orientation);
    bool swap = out->orientation >= 5;
    out->width = swap ? h : w;
    out->height = swap ? w : h;
    out->channels = gray ? 1 : 3; // CMYK is colour without alpha
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
    // The BGRA canvas plus its BGR copy.
    if (ImageStatus s = check_memory(mul_sat(int64_t(gif->SWidth) * gif->SHeight, 7), opt, "GIF canvas"); !s.ok())
        return s;
    int transparent = -1;
    bool have_frame = false;
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
        } else if (type == IMAGE_DESC_RECORD_TYPE && have_frame) {
            // Later frames are not shown, but their data must be there: skip it block by block
            // (no LZW decoding), so an animation cut after its first frame is `truncated`.
            if (DGifGetImageDesc(gif) == GIF_ERROR) return gif_fail("image descriptor");
            int code_size = 0;
            GifByteType* block = nullptr;
            if (DGifGetCode(gif, &code_size, &block) == GIF_ERROR) return gif_fail("frame data");
            while (block)
                if (DGifGetCodeNext(gif, &block) == GIF_ERROR) return gif_fail("frame data");
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
            have_frame = true;
        }
    } while (type != TERMINATE_RECORD_TYPE);
    if (have_frame) return {};
    return fail(StatusCode::kCorrupt, "GIF contains no image");
}

// std::cerr, redirected once for the whole process to a buffer that sends a thread's output to
// that thread's capture string while it is inside a CerrCapture, and to stderr otherwise. No put
// area: every write reaches xsputn, whose only state is thread-local.
thread_local std::string* t_cerr_capture = nullptr;

class CerrRouter : public std::streambuf {
protected:
    int overflow(int c) override {
        if (c == traits_type::eof()) return traits_type::not_eof(c);
        char ch = char(c);
        return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
    }
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        if (t_cerr_capture) {
            if (t_cerr_capture->size() < 2000) t_cerr_capture->append(s, size_t(n));
            return n;
        }
        return std::streamsize(std::fwrite(s, 1, size_t(n), stderr));
    }
    int sync() override {
        if (!t_cerr_capture) std::fflush(stderr);
        return 0;
    }
};

class CerrCapture {
public:
    explicit CerrCapture(std::string* into) {
        // Never destroyed: std::cerr is flushed by static destructors after ours have run.
        static CerrRouter* router = new CerrRouter;
        static const bool installed = (std::cerr.rdbuf(router), true);
        (void)installed;
        t_cerr_capture = into;
    }
    ~CerrCapture() { t_cerr_capture = nullptr; }
    CerrCapture(const CerrCapture&) = delete;
    CerrCapture& operator=(const CerrCapture&) = delete;
};

ImageStatus decode_opencv(const uint8_t* data, size_t size, Format format, const DecodeOptions& opt,
                          int ignore_orientation_flags, DecodedImage* out) {
    // OpenCV 4.6's imdecode writes a decoder's rejection to std::cerr ("imdecode_(''): can't
    // read header: ...") and returns an empty Mat; the text is captured for the row instead.
    std::string captured;
    CerrCapture capture(&captured);
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
        if (error.empty() && !captured.empty()) {
            size_t at = captured.find("error: ");
            error = name + " decoder: " + (at == std::string::npos ? captured : captured.substr(at + 7));
        }
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

// PNG through libpng directly (not OpenCV): libpng's errors and warnings then come back to us
// instead of going to stderr, so they end up in the row's detail and `-q` stays quiet.
struct PngReader {
    const uint8_t* data = nullptr;
    size_t size = 0;
    size_t pos = 0;
    bool ran_out = false;
    std::string error;
    std::string warnings;
};

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
    auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
    if (n > r->size - r->pos) {
        r->ran_out = true;
        png_error(png, "data ends before the image does");
    }
    std::memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
    auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
    if (r->error.empty()) r->error = msg ? msg : "unknown error";
    png_longjmp(png, 1);
}

void png_on_warning(png_structp png, png_const_charp msg) {
    auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
    if (r->warnings.size() < 200) r->warnings += std::string(r->warnings.empty() ? "" : "; ") + (msg ? msg : "");
}

// Runs libpng calls that may longjmp out on error. `body` must not own C++ objects with
// destructors (a longjmp skips them). Returns false when libpng reported an error.
template <typename Body>
bool png_guarded(png_structp png, Body&& body) {
    if (setjmp(png_jmpbuf(png))) return false;
    body();
    return true;
}

ImageStatus decode_png(const uint8_t* data, size_t size, const DecodeOptions& opt, DecodedImage* out) {
    PngReader reader;
    reader.data = data;
    reader.size = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_on_error, png_on_warning);
    if (!png) return fail(StatusCode::kCorrupt, "libpng could not be initialised");
    png_infop info = png_create_info_struct(png);
    struct Destroy {
        png_structp* png;
        png_infop* info;
        ~Destroy() { png_destroy_read_struct(png, info, nullptr); }
    } destroy{&png, &info};
    if (!info) return fail(StatusCode::kCorrupt, "libpng could not be initialised");
    auto failed = [&]() {
        std::string why = reader.error + (reader.warnings.empty() ? "" : " (" + reader.warnings + ")");
        if (reader.ran_out || !has_end_marker(Format::kPng, data, size))
            return fail(StatusCode::kTruncated, "png: " + why);
        return fail(StatusCode::kCorrupt, "png: " + why);
    };
    png_uint_32 w = 0, h = 0;
    int depth = 0, colour = 0;
    bool ok = png_guarded(png, [&] {
        png_set_read_fn(png, &reader, png_read_bytes);
        png_read_info(png, info);
        png_get_IHDR(png, info, &w, &h, &depth, &colour, nullptr, nullptr, nullptr);
        if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (colour == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
        if (depth == 16) png_set_swap(png); // network byte order -> host (little-endian)
        png_set_bgr(png);
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
    });
    if (!ok) return failed();
    if (ImageStatus s = check_pixels(w, h, opt.max_pixels); !s.ok()) return s;
    const int channels = png_get_channels(png, info);
    const size_t row_bytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || row_bytes < size_t(w) * channels * (depth == 16 ? 2 : 1))
        return fail(StatusCode::kCorrupt, "png: unexpected row layout");
    cv::Mat m(int(h), int(w), CV_MAKETYPE(depth == 16 ? CV_16U : CV_8U, channels));
    std::vector<png_bytep> rows(h);
    for (png_uint_32 y = 0; y < h; ++y) rows[y] = m.ptr<png_byte>(int(y));
    png_bytepp row_ptrs = rows.data();
    if (!png_guarded(png, [&] {
            png_read_image(png, row_ptrs);
            png_read_end(png, nullptr);
        }))
        return failed();
    // Warnings that mean the pixel data itself is damaged or incomplete.
    if (contains_ci(reader.warnings, "not enough image data") || contains_ci(reader.warnings, "ends"))
        return fail(StatusCode::kTruncated, "png: " + reader.warnings);
    if (contains_ci(reader.warnings, "data check") || contains_ci(reader.warnings, "too much image data") ||
        contains_ci(reader.warnings, "invalid") || contains_ci(reader.warnings, "bad adaptive filter"))
        return fail(StatusCode::kCorrupt, "png: " + reader.warnings);
    out->channels = channels == 2 ? 4 : channels;
    out->pixels = to_8bit(m, &out->bit_depth);
    out->width = int(w);
    out->height = int(h);
    return {};
}

// Animated WebP (OpenCV 4.6 reads only still WebP): the first frame, composited on its canvas by
// libwebp's animation decoder.
ImageStatus decode_webp_animation(const uint8_t* data, size_t size, const DecodeOptions& opt,
                                  DecodedImage* out) {
    WebPData webp{data, size};
    WebPAnimDecoderOptions wopt;
    if (!WebPAnimDecoderOptionsInit(&wopt)) return fail(StatusCode::kCorrupt, "libwebp could not be initialised");
    wopt.color_mode = MODE_BGRA;
    wopt.use_threads = 0;
    struct Decoder {
        WebPAnimDecoder* d;
        ~Decoder() { if (d) WebPAnimDecoderDelete(d); }
    } dec{WebPAnimDecoderNew(&webp, &wopt)};
    if (!dec.d) {
        if (!has_end_marker(Format::kWebp, data, size))
            return fail(StatusCode::kTruncated, "webp data ends before the animation does");
        return fail(StatusCode::kCorrupt, "the animated WebP decoder rejected the data");
    }
    WebPAnimInfo info;
    if (!WebPAnimDecoderGetInfo(dec.d, &info)) return fail(StatusCode::kCorrupt, "animated WebP without a canvas");
    uint8_t* frame = nullptr;
    int timestamp = 0;
    if (!WebPAnimDecoderGetNext(dec.d, &frame, &timestamp) || !frame)
        return fail(StatusCode::kCorrupt, "the first frame of the animated WebP does not decode");
    out->pixels = cv::Mat(int(info.canvas_height), int(info.canvas_width), CV_8UC4, frame).clone();
    out->width = int(info.canvas_width);
    out->height = int(info.canvas_height);
    out->channels = 4;
    out->bit_depth = 8;
    return {};
}

bool is_animated_webp(const uint8_t* d, size_t n) {
    return n >= 21 && std::memcmp(d + 12, "VP8X", 4) == 0 && (d[20] & 0x02) != 0;
}

ImageStatus decode_any(const uint8_t* data, size_t size, const DecodeOptions& opt, DecodedImage* out) {
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
    if (format == Format::kJpeg) return decode_jpeg(data, size, opt, out);
    if (format == Format::kGif) return decode_gif(data, size, opt, out);
    Dimensions dims = read_dimensions(format, data, size);
    if (dims.known) {
        if (ImageStatus s = check_pixels(dims.width, dims.height, opt.max_pixels); !s.ok()) return s;
        if (ImageStatus s = check_memory(buffer_and_copy_bytes(dims), opt, std::string(format_name(format)) +
                                             (dims.bits > 8 ? ", " + std::to_string(dims.bits) + "-bit" : ""));
            !s.ok())
            return s;
    } else {
        // The decoder would allocate whatever the image declares: never decode a size that was
        // not checked. (Every valid file of these formats has a header this can read.)
        return fail(has_end_marker(format, data, size) ? StatusCode::kCorrupt : StatusCode::kTruncated,
                    std::string(format_name(format)) + " header gives no readable width and height");
    }
    if (format == Format::kPng) {
        std::string damage = png_structure_error(data, size);
        if (!damage.empty()) {
            bool truncated = damage.rfind("truncated", 0) == 0;
            return fail(truncated ? StatusCode::kTruncated : StatusCode::kCorrupt,
                        damage.substr(damage.find(": ") + 2));
        }
    }
    if (format == Format::kPng) return decode_png(data, size, opt, out);
    if (format == Format::kWebp && is_animated_webp(data, size)) return decode_webp_animation(data, size, opt, out);
    if (format == Format::kPnm && data[1] >= '1' && data[1] <= '3' && !std::isspace(data[size - 1])) {
        // OpenCV's ASCII PNM reader fails on a last number not followed by whitespace, which
        // the format allows.
        std::vector<uint8_t> copy(data, data + size);
        copy.push_back('\n');
        return decode_opencv(copy.data(), copy.size(), format, opt, cv::IMREAD_UNCHANGED, out);
    }
    return decode_opencv(data, size, format, opt, cv::IMREAD_UNCHANGED, out);
}

} // namespace

ImageStatus decode_image(const uint8_t* data, size_t size, const DecodeOptions& opt,
                         DecodedImage* out) {
    *out = DecodedImage{};
    ImageStatus s = decode_any(data, size, opt, out);
    if (!s.ok()) out->pixels.release(); // a failure keeps no partial pixels
    return s;
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

namespace {

const char* file_kind(mode_t mode) {
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISDIR(mode)) return "a folder";
    return "not a regular file";
}

} // namespace

bool read_file(const std::string& path, int64_t max_bytes, std::vector<uint8_t>* bytes, ImageStatus* status) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer. Only regular files are read, and
    // never more than their size at open time, so /dev/zero or a growing file cannot exhaust
    // memory.
    struct stat st;
    auto not_regular = [&] {
        *status = ImageStatus::make(StatusCode::kNotRegularFile, std::string("the path is ") + file_kind(st.st_mode) +
                                                                     ", not a regular file; it is not read");
        return false;
    };
    // Sockets cannot be opened at all: tell them (and devices, FIFOs) before trying.
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return not_regular();
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *status = ImageStatus::make(StatusCode::kUnreadable, std::strerror(errno));
        return false;
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    if (::fstat(fd, &st) != 0) {
        *status = ImageStatus::make(StatusCode::kUnreadable, std::strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) return not_regular(); // replaced since the stat above
    if (max_bytes > 0 && st.st_size > max_bytes) {
        *status = ImageStatus::make(StatusCode::kTooLarge, "the file is " + mib(st.st_size) +
                                                               ", more than the per-image limit of " +
                                                               mib(max_bytes) + " (--max-image-memory)");
        return false;
    }
    bytes->resize(size_t(st.st_size));
    size_t got = 0;
    while (got < bytes->size()) {
        const ssize_t n = ::read(fd, bytes->data() + got, bytes->size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *status = ImageStatus::make(StatusCode::kUnreadable, std::string("read error: ") + std::strerror(errno));
            bytes->clear();
            return false;
        }
        if (n == 0) break; // the file shrank since fstat: what is there is what is analysed
        got += size_t(n);
    }
    bytes->resize(got);
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
