// From discovered files and label sources to the items a scan analyses: one per image, or one
// per bounding box with --objects, each with its label and split.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/discover.h"
#include "io/labels.h"
#include "vislint/options.h"

namespace vislint::pipeline {

struct Item {
    std::string path;   // the file, or "file#box_id"
    std::string source; // object crops: the file ("" otherwise)
    std::string box;    // object crops: "x,y,w,h" in displayed pixels, clipped to the image
    std::string label;  // "" = unlabelled
    std::string split;  // "" = none
    io::FileStat stat;  // of the file (the source of a crop), when discovery read it
};

struct ItemPlan {
    std::vector<Item> items;
    uint64_t labelled = 0;
    uint64_t missing_label_files = 0;  // label rows / COCO images naming files that do not exist
    uint64_t unscanned_labelled = 0;   // labelled files that are not under the inputs
    uint64_t skipped_boxes = 0;        // --objects: boxes below the minimum size or outside the image
    uint64_t images_without_boxes = 0; // --objects: images with no box (not scanned)
    std::vector<std::string> warnings; // one line each, for the log
};

// Reads the label sources that do not depend on discovery (labels CSV, rows, COCO).
io::Annotations read_annotations(const LabelOptions& labels, const std::vector<std::string>& inputs);

// The inputs to discover when the user gave none: the files a labels CSV / rows / COCO name, or
// the YOLO folder's images/ (or the folder itself). Throws vislint::Error when there is nothing.
std::vector<std::string> inputs_from_labels(const LabelOptions& labels, const io::Annotations& annotations);

// Builds the items. YOLO labels are read here (they are found from the image paths).
// Throws vislint::Error for malformed label files.
ItemPlan build_items(const LabelOptions& labels, io::Discovery found, io::Annotations annotations);

} // namespace vislint::pipeline
