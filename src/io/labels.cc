#include "io/labels.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/csv.h"
#include "io/discover.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint::io {
namespace {

bool file_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void note_missing(Annotations* a, const std::string& path) {
    ++a->missing_files;
    if (a->missing_examples.size() < 5) a->missing_examples.push_back(path);
}

// Sets the label (and split, when given) of the item `name` (the key as given); false when it
// had a row already.
bool set_name_label(Annotations* a, const std::string& name, const std::string& label,
                    const std::string& split) {
    const bool first = !a->by_key.count(name);
    ImageAnnotation& ann = a->by_key[name];
    a->path_of[name] = name;
    ann.label = label;
    if (!split.empty()) ann.split = canonical_split(split);
    return first;
}

// The same for an image file, keyed by path_key().
bool set_label(Annotations* a, const std::string& path, const std::string& label,
               const std::string& split) {
    return set_name_label(a, path_key(path), label, split);
}

// The `names:` of a YOLO data yaml: `names: [a, b]`, or a block of `- a` / `0: a` lines.
std::vector<std::string> yaml_names(const std::string& path) {
    std::string text = read_text(path, "YOLO data file");
    std::istringstream in(text);
    std::string line;
    std::vector<std::string> names;
    auto unquote = [](std::string s) {
        s = trim(s);
        if (s.size() >= 2 && (s[0] == '\'' || s[0] == '"') && s.back() == s[0]) s = s.substr(1, s.size() - 2);
        return s;
    };
    bool in_block = false;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        size_t hash = line.find(" #");
        if (hash != std::string::npos) line = line.substr(0, hash);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (in_block) {
            if (line.empty() || trim(line).empty()) continue;
            if (!std::isspace((unsigned char)line[0])) break; // next top-level key
            std::string item = trim(line);
            if (item.rfind("- ", 0) == 0) {
                names.push_back(unquote(item.substr(2)));
            } else {
                size_t colon = item.find(':');
                if (colon == std::string::npos)
                    throw Error(path + ":" + std::to_string(lineno) + ": expected '- name' or 'N: name' under names:");
                size_t idx = 0;
                try {
                    idx = std::stoul(item.substr(0, colon));
                } catch (const std::exception&) {
                    throw Error(path + ":" + std::to_string(lineno) + ": class index is not a number: " + item);
                }
                if (idx > 100000) throw Error(path + ":" + std::to_string(lineno) + ": class index too large");
                if (names.size() <= idx) names.resize(idx + 1);
                names[idx] = unquote(item.substr(colon + 1));
            }
            continue;
        }
        if (line.rfind("names:", 0) != 0) continue;
        std::string rest = trim(line.substr(6));
        if (rest.empty()) {
            in_block = true;
            continue;
        }
        if (rest.front() != '[' || rest.back() != ']')
            throw Error(path + ":" + std::to_string(lineno) + ": names: must be a [list] or a block of entries");
        std::string inner = rest.substr(1, rest.size() - 2);
        std::string item;
        std::istringstream items(inner);
        while (std::getline(items, item, ',')) names.push_back(unquote(item));
        break;
    }
    if (names.empty()) throw Error(path + ": no class names (a 'names:' entry) found");
    return names;
}

std::vector<std::string> yolo_class_names(const std::string& dir) {
    for (const char* f : {"data.yaml", "dataset.yaml", "data.yml"}) {
        std::string p = (fs::path(dir) / f).string();
        if (file_exists(p)) return yaml_names(p);
    }
    for (const char* f : {"classes.txt", "obj.names", "classes.names"}) {
        std::string p = (fs::path(dir) / f).string();
        if (!file_exists(p)) continue;
        std::istringstream in(read_text(p, "class list"));
        std::vector<std::string> names;
        std::string line;
        while (std::getline(in, line)) {
            line = trim(line);
            if (!line.empty()) names.push_back(line);
        }
        if (names.empty()) throw Error(p + ": no class names");
        return names;
    }
    throw Error("YOLO folder " + dir + " has no data.yaml, dataset.yaml, classes.txt or obj.names naming the classes");
}

std::string yolo_label_file(const std::string& image) {
    fs::path p(image);
    std::vector<std::string> parts;
    for (const auto& c : p.parent_path()) parts.push_back(c.string());
    for (size_t i = parts.size(); i-- > 0;) {
        if (parts[i] != "images") continue;
        fs::path q;
        for (size_t j = 0; j < parts.size(); ++j) q /= (j == i ? std::string("labels") : parts[j]);
        std::string candidate = (q / p.stem()).string() + ".txt";
        if (file_exists(candidate)) return candidate;
        break;
    }
    std::string beside = (p.parent_path() / p.stem()).string() + ".txt";
    return file_exists(beside) ? beside : "";
}

// A YOLO field: a plain decimal number (no hex, no nan / inf; 1e999 overflows and is refused).
double number(const std::string& s, const std::string& where, const char* field) {
    const char* b = s.c_str();
    char* end = nullptr;
    double v = std::strtod(b, &end);
    if (s.empty() || end != b + s.size() || s.find_first_of("xX") != std::string::npos)
        throw Error(where + ": " + field + " '" + s + "' is not a number");
    if (!std::isfinite(v)) throw Error(where + ": " + field + " '" + s + "' is not a finite number");
    return v;
}

// Where a JSON number too large for a double is ("annotations[3].bbox[2]") and how it is
// written: nlohmann refuses the whole document for it (out_of_range 406) without saying where.
// A second, SAX pass made only to word that error.
class OverflowAt : public nlohmann::json_sax<nlohmann::json> {
public:
    std::string path, token;

    bool null() override { return value(); }
    bool boolean(bool) override { return value(); }
    bool number_integer(number_integer_t) override { return value(); }
    bool number_unsigned(number_unsigned_t) override { return value(); }
    bool number_float(number_float_t, const string_t&) override { return value(); }
    bool string(string_t&) override { return value(); }
    bool binary(binary_t&) override { return value(); }
    bool start_object(std::size_t) override { return open(false); }
    bool key(string_t& k) override {
        stack_.back().key = k;
        return true;
    }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(true); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t, const std::string& last_token, const nlohmann::detail::exception& e) override {
        if (e.id == 406) {
            path = child_path();
            token = last_token;
        }
        return false;
    }

private:
    struct Frame {
        bool array;
        size_t index = 0;
        std::string key;
        std::string path;
    };
    std::string child_path() const {
        if (stack_.empty()) return "(top level)";
        const Frame& f = stack_.back();
        if (f.array) return f.path + "[" + std::to_string(f.index) + "]";
        return f.path.empty() ? f.key : f.path + "." + f.key;
    }
    bool value() {
        if (!stack_.empty() && stack_.back().array) ++stack_.back().index;
        return true;
    }
    bool open(bool array) {
        std::string p = stack_.empty() ? "" : child_path();
        stack_.push_back({array, 0, "", p});
        return true;
    }
    bool close() {
        stack_.pop_back();
        return value();
    }
    std::vector<Frame> stack_;
};

} // namespace

std::string path_key(const std::string& path) { return absolute_path(path); }

std::string canonical_split(const std::string& split) {
    std::string s = lower(trim(split));
    if (s == "valid" || s == "validation") return "val";
    return s;
}

std::string split_from_path(const std::string& path, uint32_t root_length) {
    if (root_length == 0 || root_length >= path.size()) return "";
    size_t b = root_length;
    while (b < path.size()) {
        size_t e = path.find('/', b);
        if (e == std::string::npos) break; // the file name itself is not a split
        std::string c = lower(path.substr(b, e - b));
        if (c == "train" || c == "test" || c == "val" || c == "valid" || c == "validation")
            return canonical_split(c);
        b = e + 1;
    }
    return "";
}

std::string folder_label(const std::string& path) {
    fs::path parent = fs::path(path).parent_path();
    std::string name = parent.filename().string();
    if (name.empty() || name == "." || name == "..") return "";
    std::string l = lower(name);
    if (l == "train" || l == "test" || l == "val" || l == "valid" || l == "validation") return "";
    return name;
}

std::string majority_label(const std::vector<Box>& boxes) {
    std::map<std::string, std::pair<int, double>> tally;
    for (const Box& b : boxes) {
        auto& t = tally[b.label];
        t.first += 1;
        t.second += b.w * b.h;
    }
    std::string best;
    std::pair<int, double> top{-1, 0};
    for (const auto& [label, t] : tally)
        if (t > top) {
            top = t;
            best = label;
        }
    return best;
}

Annotations read_labels_csv(const std::string& csv_path, bool verbatim) {
    std::vector<CsvRecord> recs = parse_csv(read_text(csv_path, "labels file"), csv_path);
    if (recs.empty()) throw Error(csv_path + ": empty labels file (expected a header with path,label)");
    int col_path = -1, col_label = -1, col_split = -1;
    const auto& head = recs[0].fields;
    for (size_t c = 0; c < head.size(); ++c) {
        std::string h = lower(trim(head[c]));
        if (h == "path" || h == "file" || h == "filename") col_path = col_path < 0 ? int(c) : col_path;
        else if (h == "label" || h == "class") col_label = col_label < 0 ? int(c) : col_label;
        else if (h == "split") col_split = int(c);
    }
    if (col_path < 0 || col_label < 0)
        throw Error(csv_path + ":1: the header must name a 'path' and a 'label' column (found: " +
                    recs[0].fields[0] + (head.size() > 1 ? ", ..." : "") + ")");
    const std::string base = fs::path(csv_path).parent_path().string();
    Annotations a;
    uint64_t repeated = 0;
    for (size_t r = 1; r < recs.size(); ++r) {
        const auto& f = recs[r].fields;
        const std::string where = record_place(csv_path, recs[r], head.size());
        std::string p = trim(f[size_t(col_path)]);
        if (p.empty()) throw Error(where + ": empty path");
        if (verbatim) {
            if (!set_name_label(&a, f[size_t(col_path)], trim(f[size_t(col_label)]),
                                col_split >= 0 ? f[size_t(col_split)] : ""))
                ++repeated;
            continue;
        }
        std::string path = resolve_path(base, p);
        if (!file_exists(path)) {
            note_missing(&a, path);
            continue;
        }
        if (!set_label(&a, path, trim(f[size_t(col_label)]), col_split >= 0 ? f[size_t(col_split)] : ""))
            ++repeated;
    }
    if (repeated)
        a.warnings.push_back(csv_path + ": " + std::to_string(repeated) +
                             " path(s) listed more than once; the last row wins");
    return a;
}

Annotations read_label_rows(const std::vector<LabelRow>& rows) {
    Annotations a;
    for (const LabelRow& r : rows) {
        if (r.path.empty()) throw Error("labels: a row has an empty path");
        if (!file_exists(r.path)) {
            note_missing(&a, r.path);
            continue;
        }
        set_label(&a, r.path, trim(r.label), r.split);
    }
    return a;
}

Annotations read_coco(const std::string& json_path, const std::vector<std::string>& image_roots) {
    nlohmann::json j;
    const std::string text = read_text(json_path, "COCO file");
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        std::string what = e.what(); // "[json.exception.parse_error.101] parse error at line 3, ..."
        size_t at = what.find("] ");
        throw Error(json_path + ": not valid JSON: " + (at == std::string::npos ? what : what.substr(at + 2)));
    } catch (const nlohmann::json::out_of_range&) { // a number like 1e999
        OverflowAt where;
        nlohmann::json::sax_parse(text, &where);
        throw Error(json_path + ": " + where.path + ": " + where.token + " is not a finite number (too large for a double)");
    }
    auto found_text = [&](const nlohmann::json& v) {
        if (v.is_string()) return "the string \"" + v.get<std::string>().substr(0, 40) + "\"";
        if (v.is_number()) return v.dump();
        return std::string(v.is_null() ? "null" : v.is_boolean() ? "a boolean" : v.is_array() ? "an array" : "an object");
    };
    auto finite = [&](const nlohmann::json& v, const std::string& where) -> double {
        if (!v.is_number()) throw Error(json_path + ": " + where + " must be a number (found " + found_text(v) + ")");
        const double d = v.get<double>();
        if (!std::isfinite(d)) throw Error(json_path + ": " + where + " is not a finite number");
        return d;
    };
    auto field = [&](const nlohmann::json& obj, const char* key, const std::string& where) -> const nlohmann::json& {
        if (!obj.is_object() || !obj.contains(key)) throw Error(json_path + ": " + where + "." + key + " is missing");
        return obj[key];
    };
    // Ids: whole numbers 0 .. 2^63-1 (larger ones wrap around or lose digits in int64 / double).
    auto integer = [&](const nlohmann::json& v, const std::string& where) -> int64_t {
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
            throw Error(json_path + ": " + where + ": " + v.dump() + " is too large for an id (at most 2^63-1)");
        if (v.is_number_float()) {
            finite(v, where);
            throw Error(json_path + ": " + where + " must be a whole number (found " + v.dump() + ")");
        }
        if (!v.is_number_integer())
            throw Error(json_path + ": " + where + " must be an integer (found " + found_text(v) + ")");
        const int64_t id = v.get<int64_t>();
        if (id < 0) throw Error(json_path + ": " + where + ": " + std::to_string(id) + " is negative; ids are >= 0");
        return id;
    };
    if (!j.is_object()) throw Error(json_path + ": top level must be an object with images, annotations, categories");
    const auto& images = field(j, "images", "(top level)");
    const auto& cats = field(j, "categories", "(top level)");
    if (!images.is_array()) throw Error(json_path + ": images must be an array");
    if (!cats.is_array()) throw Error(json_path + ": categories must be an array");

    std::unordered_map<int64_t, std::string> category;
    for (size_t i = 0; i < cats.size(); ++i) {
        std::string where = "categories[" + std::to_string(i) + "]";
        const auto& name = field(cats[i], "name", where);
        if (!name.is_string()) throw Error(json_path + ": " + where + ".name must be a string");
        const int64_t id = integer(field(cats[i], "id", where), where + ".id");
        if (!category.emplace(id, name.get<std::string>()).second)
            throw Error(json_path + ": " + where + ".id " + std::to_string(id) + " is used by two categories");
    }
    std::vector<std::string> roots = image_roots;
    const std::string base = fs::path(json_path).parent_path().string();
    roots.push_back(base.empty() ? "." : base);
    roots.push_back((fs::path(base.empty() ? "." : base) / "images").string());

    Annotations a;
    std::unordered_map<int64_t, std::string> key_of; // COCO image id -> path key ("" = missing)
    for (size_t i = 0; i < images.size(); ++i) {
        std::string where = "images[" + std::to_string(i) + "]";
        const auto& name = field(images[i], "file_name", where);
        if (!name.is_string()) throw Error(json_path + ": " + where + ".file_name must be a string");
        int64_t id = integer(field(images[i], "id", where), where + ".id");
        if (key_of.count(id))
            throw Error(json_path + ": " + where + ".id " + std::to_string(id) + " is used by two images");
        std::string file = name.get<std::string>(), found;
        if (!file.empty() && file[0] == '/') {
            if (file_exists(file)) found = file;
        } else {
            for (const auto& root : roots) {
                std::string p = (fs::path(root) / file).lexically_normal().string();
                if (file_exists(p)) {
                    found = p;
                    break;
                }
            }
        }
        if (found.empty()) {
            note_missing(&a, file);
            key_of[id] = "";
            continue;
        }
        std::string key = path_key(found);
        key_of[id] = key;
        a.path_of[key] = key;
        a.by_key[key].has_boxes = true;
    }
    if (j.contains("annotations")) {
        const auto& anns = j["annotations"];
        if (!anns.is_array()) throw Error(json_path + ": annotations must be an array");
        std::unordered_map<int64_t, size_t> box_ids; // annotation id -> its index
        for (size_t i = 0; i < anns.size(); ++i) {
            std::string where = "annotations[" + std::to_string(i) + "]";
            int64_t image_id = integer(field(anns[i], "image_id", where), where + ".image_id");
            int64_t cat = integer(field(anns[i], "category_id", where), where + ".category_id");
            auto k = key_of.find(image_id);
            if (k == key_of.end())
                throw Error(json_path + ": " + where + ".image_id " + std::to_string(image_id) + " is not in images");
            auto c = category.find(cat);
            if (c == category.end())
                throw Error(json_path + ": " + where + ".category_id " + std::to_string(cat) + " is not in categories");
            const auto& bbox = field(anns[i], "bbox", where);
            if (!bbox.is_array() || bbox.size() != 4)
                throw Error(json_path + ": " + where + ".bbox must be [x, y, width, height] (found " +
                            (bbox.is_array() ? std::to_string(bbox.size()) + " values" : found_text(bbox)) + ")");
            double xywh[4];
            for (size_t c = 0; c < 4; ++c) xywh[c] = finite(bbox[c], where + ".bbox[" + std::to_string(c) + "]");
            Box b;
            b.id = anns[i].contains("id") ? integer(anns[i]["id"], where + ".id") : int64_t(i);
            // The id names the crop ("file#id") with --objects: two boxes must not share one.
            if (auto [it, fresh] = box_ids.emplace(b.id, i); !fresh)
                throw Error(json_path + ": " + where + ".id " + std::to_string(b.id) + " is used twice (also by annotations[" +
                            std::to_string(it->second) + "]" + (anns[it->second].contains("id") ? "" : ", which has no id and so takes its index") + ")");
            if (k->second.empty()) continue; // image file missing: counted above
            b.x = xywh[0];
            b.y = xywh[1];
            b.w = xywh[2];
            b.h = xywh[3];
            if (b.w < 0 || b.h < 0) throw Error(json_path + ": " + where + ".bbox has a negative size");
            b.label = c->second;
            a.by_key[k->second].boxes.push_back(std::move(b));
        }
    }
    for (auto& [key, ann] : a.by_key) ann.label = majority_label(ann.boxes);
    return a;
}

Annotations read_yolo(const std::string& dir, const std::vector<std::string>& image_files) {
    std::vector<std::string> names = yolo_class_names(dir);
    Annotations a;
    const std::string root = path_key(dir);
    for (const std::string& image : image_files) {
        std::string key = path_key(image);
        if (key.compare(0, root.size(), root) != 0 || (key.size() > root.size() && key[root.size()] != '/' && root != "/"))
            continue; // not part of this YOLO dataset
        ImageAnnotation& ann = a.by_key[key];
        a.path_of[key] = key;
        ann.has_boxes = true;
        std::string txt = yolo_label_file(image);
        if (txt.empty()) continue; // no label file: an image without objects
        std::istringstream in(read_text(txt, "YOLO label file"));
        std::string line;
        int lineno = 0;
        while (std::getline(in, line)) {
            ++lineno;
            line = trim(line);
            if (line.empty()) continue;
            const std::string where = txt + ":" + std::to_string(lineno);
            std::istringstream fields(line);
            std::vector<std::string> f;
            std::string tok;
            while (fields >> tok) f.push_back(tok);
            if (f.size() != 5)
                throw Error(where + ": expected 'class x_center y_center width height', found " +
                            std::to_string(f.size()) + " field(s)");
            double cls = number(f[0], where, "class");
            if (cls < 0 || cls != std::floor(cls) || cls >= double(names.size()))
                throw Error(where + ": class " + f[0] + " is not one of the " + std::to_string(names.size()) + " classes");
            Box b;
            b.id = lineno;
            double cx = number(f[1], where, "x_center"), cy = number(f[2], where, "y_center");
            b.w = number(f[3], where, "width");
            b.h = number(f[4], where, "height");
            if (b.w < 0 || b.h < 0 || b.w > 1.0001 || b.h > 1.0001 || cx < -0.0001 || cx > 1.0001 || cy < -0.0001 || cy > 1.0001)
                throw Error(where + ": coordinates must be fractions of the image size (0..1)");
            b.x = cx - b.w / 2;
            b.y = cy - b.h / 2;
            b.normalised = true;
            b.label = names[size_t(cls)];
            ann.boxes.push_back(std::move(b));
        }
        ann.label = majority_label(ann.boxes);
    }
    return a;
}

void merge(Annotations* into, Annotations&& more) {
    for (auto& [key, ann] : more.by_key) {
        ImageAnnotation& dst = into->by_key[key];
        if (!ann.label.empty() || ann.has_boxes) dst.label = ann.label;
        if (!ann.split.empty()) dst.split = ann.split;
        if (ann.has_boxes) {
            dst.has_boxes = true;
            dst.boxes = std::move(ann.boxes);
        }
    }
    for (auto& [key, path] : more.path_of) into->path_of.emplace(key, path);
    into->missing_files += more.missing_files;
    for (auto& m : more.missing_examples)
        if (into->missing_examples.size() < 5) into->missing_examples.push_back(std::move(m));
    for (auto& w : more.warnings) into->warnings.push_back(std::move(w));
}

} // namespace vislint::io
