#include "io/csv.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "vislint/status.h"

namespace vislint::io {

std::string read_text(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(std::string("cannot read ") + what + " " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3); // UTF-8 BOM
    return s;
}

std::string record_place(const std::string& name, const CsvRecord& rec, size_t width) {
    std::string where = name + ":" + std::to_string(rec.line);
    if (rec.fields.size() != width)
        throw Error(where + ": expected " + std::to_string(width) + " fields like the header, found " +
                    std::to_string(rec.fields.size()));
    return where;
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower((unsigned char)c));
    return s;
}

std::string trim(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace((unsigned char)s[b])) ++b;
    while (e > b && std::isspace((unsigned char)s[e - 1])) --e;
    return s.substr(b, e - b);
}

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& name) {
    std::vector<CsvRecord> out;
    CsvRecord rec{1, {}};
    std::string field;
    bool quoted = false, field_started = false;
    int line = 1, quote_line = 0;
    auto end_record = [&] {
        rec.fields.push_back(std::move(field));
        field.clear();
        bool blank = rec.fields.size() == 1 && trim(rec.fields[0]).empty() && !field_started;
        if (!blank) out.push_back(std::move(rec));
        rec = CsvRecord{line, {}};
        field_started = false;
    };
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                if (c == '\n') ++line;
                field += c;
            }
            continue;
        }
        if (c == '"' && trim(field).empty()) {
            field.clear();
            quoted = field_started = true;
            quote_line = line;
        } else if (c == ',') {
            rec.fields.push_back(std::move(field));
            field.clear();
            field_started = true;
        } else if (c == '\n' || c == '\r') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
            ++line;
            end_record();
        } else {
            field += c;
        }
    }
    if (quoted) throw Error(name + ":" + std::to_string(quote_line) + ": quoted field is never closed");
    if (!field.empty() || !rec.fields.empty() || field_started) end_record();
    return out;
}

} // namespace vislint::io
