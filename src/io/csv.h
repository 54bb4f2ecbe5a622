// Text files of the inputs (label CSVs, COCO JSON, YOLO lists, ground truth): read whole, and CSV
// split into records (RFC 4180).
#pragma once

#include <string>
#include <vector>

namespace vislint::io {

// The whole file, without a leading UTF-8 BOM. Throws vislint::Error "cannot read WHAT PATH".
std::string read_text(const std::string& path, const char* what);

// One CSV record and the line it starts on (1-based).
struct CsvRecord {
    int line;
    std::vector<std::string> fields;
};

// RFC 4180 records (quotes, doubled quotes, CRLF; blank lines skipped). Throws vislint::Error
// naming `name` and the line for a quoted field that is never closed.
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& name);

// "NAME:LINE" of `rec`, after checking that it has `width` fields like the header (throws
// vislint::Error "NAME:LINE: expected W fields like the header, found N" otherwise).
std::string record_place(const std::string& name, const CsvRecord& rec, size_t width);

// `s` without leading and trailing white space; `s` in lower case (ASCII).
std::string trim(const std::string& s);
std::string lower(std::string s);

} // namespace vislint::io
