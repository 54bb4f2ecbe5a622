#include "io/formats.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include <zlib.h>

namespace vislint::io {
namespace {

uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
uint32_t le16(const uint8_t* p) { return p[0] | (uint32_t(p[1]) << 8); }
uint32_t le32(const uint8_t* p) {
    return p[0] | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint32_t le24(const uint8_t* p) { return p[0] | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16); }

// Reads TIFF-structured data (used by TIFF files and by EXIF): returns the first value of `tag`
// in the first IFD, -1 when absent or unreadable, -2 when stored as a negative signed number.
// SHORT, LONG, SSHORT and SLONG values are read, inline or (for arrays) at their offset.
int64_t tiff_tag(const uint8_t* t, size_t n, uint16_t tag) {
    if (n < 8) return -1;
    bool le;
    if (t[0] == 'I' && t[1] == 'I') le = true;
    else if (t[0] == 'M' && t[1] == 'M') le = false;
    else return -1;
    auto u16 = [&](size_t off) { return le ? le16(t + off) : be16(t + off); };
    auto u32 = [&](size_t off) { return le ? le32(t + off) : be32(t + off); };
    size_t ifd = u32(4);
    if (ifd + 2 > n) return -1;
    size_t count = u16(ifd);
    for (size_t i = 0; i < count; ++i) {
        size_t e = ifd + 2 + i * 12;
        if (e + 12 > n) return -1;
        if (u16(e) != tag) continue;
        const uint32_t type = u16(e + 2), values = u32(e + 4);
        const size_t width = (type == 3 || type == 8) ? 2 : (type == 4 || type == 9) ? 4 : 0;
        if (width == 0 || values == 0) return -1;
        size_t at = e + 8;
        if (size_t(values) * width > 4) { // the values live at an offset
            at = u32(e + 8);
            if (at + width > n) return -1;
        }
        switch (type) {
        case 3: return u16(at);
        case 4: return u32(at);
        case 8: return int16_t(u16(at)) < 0 ? -2 : u16(at);
        default: return int32_t(u32(at)) < 0 ? -2 : u32(at);
        }
    }
    return -1;
}

// Parses the next whitespace-separated integer of a PNM header, skipping # comments.
bool pnm_int(const uint8_t* d, size_t n, size_t* pos, int64_t* out) {
    size_t p = *pos;
    while (p < n) {
        if (d[p] == '#') {
            while (p < n && d[p] != '\n') ++p;
        } else if (std::isspace(d[p])) {
            ++p;
        } else {
            break;
        }
    }
    if (p >= n || !std::isdigit(d[p])) return false;
    int64_t v = 0;
    while (p < n && std::isdigit(d[p]) && v < (int64_t(1) << 40)) v = v * 10 + (d[p++] - '0');
    *pos = p;
    *out = v;
    return true;
}

} // namespace

const char* format_name(Format f) {
    switch (f) {
    case Format::kJpeg: return "jpeg";
    case Format::kPng: return "png";
    case Format::kBmp: return "bmp";
    case Format::kTiff: return "tiff";
    case Format::kWebp: return "webp";
    case Format::kGif: return "gif";
    case Format::kPnm: return "pnm";
    case Format::kUnknown: break;
    }
    return "unknown";
}

Format sniff_format(const uint8_t* d, size_t n) {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return Format::kJpeg;
    if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return Format::kPng;
    if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0))
        return Format::kGif;
    if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0)
        return Format::kWebp;
    if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0))
        return Format::kTiff;
    if (n >= 26 && d[0] == 'B' && d[1] == 'M') return Format::kBmp;
    if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' && std::isspace(d[2]))
        return Format::kPnm;
    return Format::kUnknown;
}

Format format_from_extension(const std::string& path) {
    size_t dot = path.find_last_of('.');
    size_t slash = path.find_last_of('/');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash))
        return Format::kUnknown;
    std::string ext = path.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == "jpg" || ext == "jpeg" || ext == "jpe" || ext == "jfif") return Format::kJpeg;
    if (ext == "png") return Format::kPng;
    if (ext == "bmp" || ext == "dib") return Format::kBmp;
    if (ext == "tif" || ext == "tiff") return Format::kTiff;
    if (ext == "webp") return Format::kWebp;
    if (ext == "gif") return Format::kGif;
    if (ext == "pbm" || ext == "pgm" || ext == "ppm" || ext == "pnm") return Format::kPnm;
    return Format::kUnknown;
}

Dimensions read_dimensions(Format f, const uint8_t* d, size_t n) {
    Dimensions r;
    switch (f) {
    case Format::kPng:
        if (n >= 26 && std::memcmp(d + 12, "IHDR", 4) == 0) {
            r = {be32(d + 16), be32(d + 20), true};
            r.bits = d[24];
            // Palette images expand to 3 or 4 channels when decoded.
            const int kChannels[7] = {1, 4, 3, 4, 4, 4, 4};
            r.channels = d[25] <= 6 ? kChannels[d[25]] : 4;
        }
        break;
    case Format::kGif:
        if (n >= 10) r = {le16(d + 6), le16(d + 8), true};
        break;
    case Format::kJpeg: // walk the segments to the first SOFn (not DHT C4, JPG C8, DAC CC)
        for (size_t i = 2; i + 9 < n;) {
            if (d[i] != 0xFF) break;
            uint8_t m = d[i + 1];
            if (m == 0xFF) { ++i; continue; }
            if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) { i += 2; continue; }
            if (m == 0xD9 || m == 0xDA) break;
            size_t len = (size_t(d[i + 2]) << 8) | d[i + 3];
            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
                r = {int64_t((d[i + 7] << 8) | d[i + 8]), int64_t((d[i + 5] << 8) | d[i + 6]), true};
                r.bits = d[i + 4];
                r.channels = d[i + 9];
                r.progressive = m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE;
                break;
            }
            i += 2 + len;
        }
        break;
    case Format::kBmp:
        if (n >= 26) {
            uint32_t hdr = le32(d + 14);
            if (hdr == 12) {
                r = {le16(d + 18), le16(d + 20), true};
            } else if (hdr >= 40) {
                int32_t w = int32_t(le32(d + 18)), h = int32_t(le32(d + 22));
                r = {std::abs(int64_t(w)), std::abs(int64_t(h)), true};
            }
        }
        break;
    case Format::kWebp:
        if (n >= 30 && std::memcmp(d + 12, "VP8X", 4) == 0) {
            r = {int64_t(le24(d + 24)) + 1, int64_t(le24(d + 27)) + 1, true};
        } else if (n >= 30 && std::memcmp(d + 12, "VP8 ", 4) == 0) {
            r = {le16(d + 26) & 0x3FFF, le16(d + 28) & 0x3FFF, true};
        } else if (n >= 25 && std::memcmp(d + 12, "VP8L", 4) == 0) {
            uint32_t b = le32(d + 21);
            r = {int64_t(b & 0x3FFF) + 1, int64_t((b >> 14) & 0x3FFF) + 1, true};
        }
        break;
    case Format::kTiff: {
        int64_t w = tiff_tag(d, n, 256), h = tiff_tag(d, n, 257);
        if (w == -2 || h == -2) {
            r = {0, 0, true}; // a negative size: refused as an empty size
        } else if (w >= 0 && h >= 0) {
            r = {w, h, true};
            int64_t spp = tiff_tag(d, n, 277), bps = tiff_tag(d, n, 258);
            r.channels = spp > 0 ? int(std::min<int64_t>(spp, 1 << 16)) : 1;
            r.bits = bps > 0 ? int(std::min<int64_t>(bps, 64)) : 1;
        }
        break;
    }
    case Format::kPnm: {
        size_t pos = 2;
        int64_t w, h;
        if (pnm_int(d, n, &pos, &w) && pnm_int(d, n, &pos, &h)) r = {w, h, true};
        break;
    }
    case Format::kUnknown:
        break;
    }
    return r;
}

int jpeg_exif_orientation(const uint8_t* d, size_t n) {
    size_t p = 2;
    while (p + 4 <= n && d[p] == 0xFF) {
        uint8_t marker = d[p + 1];
        if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7)) {
            p += 2;
            continue;
        }
        if (marker == 0xDA || marker == 0xD9) break; // start of scan: no more metadata
        size_t len = be16(d + p + 2);
        if (len < 2 || p + 2 + len > n) break;
        const uint8_t* seg = d + p + 4;
        size_t seg_len = len - 2;
        if (marker == 0xE1 && seg_len > 14 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
            int64_t o = tiff_tag(seg + 6, seg_len - 6, 0x0112);
            return (o >= 1 && o <= 8) ? int(o) : 1;
        }
        p += 2 + len;
    }
    return 1;
}

std::string png_structure_error(const uint8_t* d, size_t n) {
    size_t p = 8;
    while (true) {
        if (p + 12 > n) return "truncated: png data ends before the IEND chunk";
        uint32_t len = be32(d + p);
        std::string type(reinterpret_cast<const char*>(d + p + 4), 4);
        if (len > n || p + 12 + len > n)
            return "truncated: png data ends inside chunk " + type;
        uint32_t want = be32(d + p + 8 + len);
        uint32_t got = uint32_t(crc32(crc32(0L, Z_NULL, 0), d + p + 4, len + 4));
        if (want != got) return "corrupt: png chunk " + type + " fails its CRC check";
        if (type == "IEND") return "";
        p += 12 + len;
    }
}

bool has_end_marker(Format f, const uint8_t* d, size_t n) {
    switch (f) {
    case Format::kJpeg: {
        // EOI may be followed by padding or trailing junk that viewers ignore.
        size_t lo = n > 4096 ? n - 4096 : 0;
        for (size_t i = n; i-- > lo + 1;)
            if (d[i - 1] == 0xFF && d[i] == 0xD9) return true;
        return false;
    }
    case Format::kPng: {
        size_t lo = n > 4096 ? n - 4096 : 0;
        for (size_t i = n; i >= lo + 4; --i)
            if (std::memcmp(d + i - 4, "IEND", 4) == 0) return true;
        return false;
    }
    case Format::kWebp: // the RIFF header gives the size of the whole file
        return n >= 8 && uint64_t(le32(d + 4)) + 8 <= n;
    case Format::kGif: {
        size_t i = n;
        while (i > 0 && d[i - 1] == 0) --i;
        return i > 0 && d[i - 1] == 0x3B;
    }
    default:
        return true;
    }
}

} // namespace vislint::io
