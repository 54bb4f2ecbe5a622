// Names (file paths, folder names, labels) are byte strings on Linux and are stored as such; text
// meant for people or for JSON (which must be UTF-8) goes through these helpers on the way out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace vislint {

// `s` with every byte that is not part of a well-formed UTF-8 sequence written as `\xNN`
// (lower-case hex); valid UTF-8 is copied unchanged, so ASCII and UTF-8 names print as they are.
// "caf\xe9.png" (Latin-1 é) prints as the 12 characters `caf\xe9.png`.
std::string printable(std::string_view s);

// True when `s` is entirely well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_utf8(std::string_view s);

// A decoder / status message made safe to store and show: printable(), and control characters
// (tab, newline, ESC, ...) also written as `\xNN`; cut at a character boundary to at most
// `max_bytes` bytes (ending in "..." when cut).
constexpr size_t kMaxMessageBytes = 300;
std::string sanitize_message(std::string_view s, size_t max_bytes = kMaxMessageBytes);

// `j` serialised (nlohmann's dump(indent)) with every string value and object key passed through
// printable() first; never throws on invalid UTF-8.
std::string dump_printable(const nlohmann::json& j, int indent = -1);
// The same, rewriting `j` in place instead of copying it (the report's tree of ~100 k values).
std::string dump_printable(nlohmann::json&& j, int indent = -1);

} // namespace vislint
