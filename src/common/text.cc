#include "common/text.h"

#include <algorithm>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace vislint {
namespace {

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629, the same rules
// nlohmann::json checks on dump), 0 when the byte there does not start one.
size_t utf8_length(std::string_view s, size_t i) {
    auto byte = [&](size_t k) { return i + k < s.size() ? uint8_t(s[i + k]) : uint8_t(0); };
    auto cont = [&](size_t k) { return (byte(k) & 0xC0) == 0x80; };
    const uint8_t b = byte(0);
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return cont(1) ? 2 : 0;
    if (b >= 0xE0 && b <= 0xEF) {
        const uint8_t lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF; // overlong, surrogates
        return byte(1) >= lo && byte(1) <= hi && cont(2) ? 3 : 0;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        const uint8_t lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF; // overlong, > U+10FFFF
        return byte(1) >= lo && byte(1) <= hi && cont(2) && cont(3) ? 4 : 0;
    }
    return 0;
}

void append_hex(std::string& out, uint8_t b) {
    static const char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 15];
}

// Escapes invalid bytes (and, with `controls`, C0 controls and DEL) until `max_bytes` of output;
// sets *cut when input was left over.
std::string escape(std::string_view s, bool controls, size_t max_bytes, bool* cut) {
    std::string out;
    out.reserve(std::min(s.size(), max_bytes));
    size_t i = 0;
    while (i < s.size()) {
        const size_t n = utf8_length(s, i);
        const uint8_t b = uint8_t(s[i]);
        const bool as_hex = n == 0 || (controls && n == 1 && (b < 0x20 || b == 0x7F));
        const size_t adds = as_hex ? 4 : n;
        if (out.size() + adds > max_bytes) break;
        if (as_hex) append_hex(out, b);
        else out.append(s.data() + i, n);
        i += as_hex ? 1 : n;
    }
    *cut = i < s.size();
    return out;
}

void make_printable(nlohmann::json& j) {
    if (j.is_string()) {
        const std::string& s = j.get_ref<const std::string&>();
        if (!is_utf8(s)) j = printable(s);
    } else if (j.is_array()) {
        for (auto& v : j) make_printable(v);
    } else if (j.is_object()) {
        bool keys_ok = true;
        for (auto it = j.begin(); it != j.end(); ++it) {
            make_printable(it.value());
            keys_ok = keys_ok && is_utf8(it.key());
        }
        if (keys_ok) return; // rebuilt only when a key must change (the map is keyed by them)
        nlohmann::json out = nlohmann::json::object();
        for (auto it = j.begin(); it != j.end(); ++it) out[printable(it.key())] = std::move(it.value());
        j = std::move(out);
    }
}

} // namespace

bool is_utf8(std::string_view s) {
    for (size_t i = 0, n; i < s.size(); i += n)
        if ((n = utf8_length(s, i)) == 0) return false;
    return true;
}

std::string printable(std::string_view s) {
    bool cut = false;
    return escape(s, false, std::string::npos, &cut);
}

std::string sanitize_message(std::string_view s, size_t max_bytes) {
    const std::string_view kEllipsis = "...";
    bool cut = false;
    std::string out = escape(s, true, max_bytes, &cut);
    if (cut) {
        out = escape(s, true, max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0, &cut);
        out += kEllipsis;
    }
    return out;
}

std::string dump_printable(const nlohmann::json& j, int indent) {
    nlohmann::json copy = j;
    return dump_printable(std::move(copy), indent);
}

std::string dump_printable(nlohmann::json&& j, int indent) {
    make_printable(j);
    // replace: a last line of defence, nothing invalid is left after make_printable.
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace vislint
