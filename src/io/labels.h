// Reading labels, splits and boxes: CSV files, folder names, COCO JSON and YOLO txt folders.
//
// Every reader returns Annotations keyed by path_key() of the image file, so they can be merged
// and matched against discovered files whatever form the paths were written in. Malformed input
// throws vislint::Error naming the file and the line (CSV, YOLO) or the field (COCO); files that
// are named but do not exist are counted, never fatal.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "vislint/options.h"

namespace vislint::io {

// One bounding box. COCO boxes are in pixels (x, y = top-left corner); YOLO boxes are fractions
// of the image size (normalised = true; x, y = top-left corner too, converted on reading).
struct Box {
    int64_t id = 0; // COCO annotation id, or the line number in the YOLO file (1-based)
    double x = 0, y = 0, w = 0, h = 0;
    bool normalised = false;
    std::string label;
};

struct ImageAnnotation {
    std::string label; // empty = unlabelled
    std::string split; // empty = none given
    bool has_boxes = false; // from COCO / YOLO (an image with no boxes has has_boxes and none)
    std::vector<Box> boxes;
};

struct Annotations {
    std::unordered_map<std::string, ImageAnnotation> by_key; // path_key() -> annotation
    std::unordered_map<std::string, std::string> path_of;    // path_key() -> the file (= the key)
    uint64_t missing_files = 0; // rows / entries naming files that do not exist
    std::vector<std::string> missing_examples;
    std::vector<std::string> warnings;
};

// Absolute, lexically normalised form of `path` (io::absolute_path(): no file system access
// beyond the cwd, symlinks not resolved); the form every path of a scan is stored in.
std::string path_key(const std::string& path);

// CSV with a header row naming `path` and `label` (any case, any order) and optionally `split`;
// other columns are ignored. RFC 4180 quoting; UTF-8 BOM and CRLF accepted.
// `verbatim`: the path column holds item names (embeddings-only mode), used as keys exactly as
// written, never resolved or checked on disk.
Annotations read_labels_csv(const std::string& csv_path, bool verbatim = false);

// In-memory rows (relative paths resolve against the current directory).
Annotations read_label_rows(const std::vector<LabelRow>& rows);

// COCO: images[].file_name resolves against `image_roots` (in order), then the JSON's folder and
// its `images/` subfolder; absolute names are used as they are. Image label = the category with
// the most boxes (ties: largest total box area).
Annotations read_coco(const std::string& json_path, const std::vector<std::string>& image_roots);

// YOLO: for each of `image_files`, the label file is the same path with the last `images`
// component replaced by `labels` and the extension by `.txt` (or, failing that, the .txt beside
// the image). Class names come from data.yaml / dataset.yaml (`names:`) or classes.txt /
// obj.names in `dir`. An image without a label file has no boxes.
Annotations read_yolo(const std::string& dir, const std::vector<std::string>& image_files);

// Merges `more` into `into`; `more` wins per image for the fields it sets.
void merge(Annotations* into, Annotations&& more);

// The image's parent folder name ("" when it has none or the parent is a split folder).
std::string folder_label(const std::string& path);

// "train", "val" or "test" from the first path component below `root_length` named train, val,
// valid, validation or test (case-insensitive); "" when none.
std::string split_from_path(const std::string& path, uint32_t root_length);

// Canonical split name for a user-given one: valid / validation -> val; others lower-cased.
std::string canonical_split(const std::string& split);

// The image-level label of a set of boxes: most boxes, ties broken by total area.
std::string majority_label(const std::vector<Box>& boxes);

} // namespace vislint::io
