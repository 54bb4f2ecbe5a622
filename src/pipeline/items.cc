#include "pipeline/items.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "io/formats.h"
#include "vislint/status.h"

namespace vislint::pipeline {
namespace {

// Displayed width and height from the file's header; {0, 0} when it cannot be read.
// Reads 64 KB (enough for every header but a JPEG's behind large EXIF / ICC segments), then up
// to 1 MB only when the size is not known yet: this runs for every annotated file on every scan.
std::pair<double, double> displayed_size(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> head;
    io::Format f = io::Format::kUnknown;
    io::Dimensions d;
    for (size_t want : {size_t(1) << 16, size_t(1) << 20}) {
        size_t have = head.size();
        head.resize(want);
        in.read(reinterpret_cast<char*>(head.data() + have), std::streamsize(want - have));
        head.resize(have + size_t(in.gcount()));
        f = io::sniff_format(head.data(), head.size());
        d = io::read_dimensions(f, head.data(), head.size());
        if (d.known || head.size() < want) break;
    }
    if (!d.known) return {0, 0};
    if (f == io::Format::kJpeg && io::jpeg_exif_orientation(head.data(), head.size()) >= 5)
        return {double(d.height), double(d.width)};
    return {double(d.width), double(d.height)};
}

std::string format_box(double x, double y, double w, double h) {
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%.2f,%.2f,%.2f,%.2f", x, y, w, h);
    return buf;
}

} // namespace

io::Annotations read_annotations(const LabelOptions& o, const std::vector<std::string>& inputs) {
    io::Annotations a;
    if (!o.labels.empty() && o.labels != "folder") io::merge(&a, io::read_labels_csv(o.labels));
    if (!o.rows.empty()) io::merge(&a, io::read_label_rows(o.rows));
    if (!o.coco.empty()) {
        std::vector<std::string> roots;
        for (const auto& in : inputs)
            if (std::filesystem::is_directory(in)) roots.push_back(in);
        io::merge(&a, io::read_coco(o.coco, roots));
    }
    return a;
}

std::vector<std::string> inputs_from_labels(const LabelOptions& o, const io::Annotations& a) {
    std::vector<std::string> inputs;
    for (const auto& [key, path] : a.path_of) inputs.push_back(path);
    std::sort(inputs.begin(), inputs.end());
    if (!o.yolo.empty()) {
        std::string images = o.yolo + "/images";
        inputs.push_back(std::filesystem::is_directory(images) ? images : o.yolo);
    }
    if (inputs.empty()) {
        if (!o.labels.empty() && o.labels != "folder")
            throw Error("no input given and the labels file " + o.labels + " names no existing image");
        if (!o.coco.empty()) throw Error("no input given and the COCO file " + o.coco + " names no existing image");
        throw Error("no input given: pass one or more folders, images or list files");
    }
    return inputs;
}

ItemPlan build_items(const LabelOptions& o, io::Discovery found, io::Annotations annotations) {
    ItemPlan plan;
    if (!o.yolo.empty()) io::merge(&annotations, io::read_yolo(o.yolo, found.files));
    plan.missing_label_files = annotations.missing_files;
    if (annotations.missing_files)
        plan.warnings.push_back("labels: " + std::to_string(annotations.missing_files) +
                                " listed file(s) do not exist, e.g. " + annotations.missing_examples[0]);
    for (auto& w : annotations.warnings) plan.warnings.push_back(w);
    const bool by_folder = o.labels == "folder";
    const bool keyed = !annotations.by_key.empty();
    std::unordered_set<std::string> matched;
    uint64_t boxes_total = 0;
    if (!o.objects) plan.items.reserve(found.files.size());
    for (size_t f = 0; f < found.files.size(); ++f) {
        std::string& file = found.files[f];
        const io::ImageAnnotation* ann = nullptr;
        if (keyed) {
            std::string key = io::path_key(file);
            auto it = annotations.by_key.find(key);
            if (it != annotations.by_key.end()) {
                ann = &it->second;
                matched.insert(key);
            }
        }
        std::string split = ann && !ann->split.empty() ? ann->split : "";
        if (split.empty() && o.auto_splits) split = io::split_from_path(file, found.root_length[f]);
        if (!o.objects) {
            Item it;
            it.label = by_folder ? io::folder_label(file) : (ann ? ann->label : "");
            if (by_folder && ann && !ann->label.empty()) it.label = ann->label;
            it.split = split;
            it.stat = found.stat[f];
            it.path = std::move(found.files[f]); // last use of `file`
            plan.labelled += !it.label.empty();
            plan.items.push_back(std::move(it));
            continue;
        }
        if (!ann || !ann->has_boxes || ann->boxes.empty()) {
            ++plan.images_without_boxes;
            continue;
        }
        auto [width, height] = displayed_size(file);
        for (const io::Box& b : ann->boxes) {
            ++boxes_total;
            double x = b.x, y = b.y, w = b.w, h = b.h;
            if (b.normalised) {
                if (width <= 0) { // unreadable header: the file is reported as broken per box
                    x = y = 0;
                    w = h = 1;
                } else {
                    x *= width, w *= width, y *= height, h *= height;
                }
            }
            if (width > 0) { // clip to the image
                double x1 = std::clamp(x + w, 0.0, width), y1 = std::clamp(y + h, 0.0, height);
                x = std::clamp(x, 0.0, width), y = std::clamp(y, 0.0, height);
                w = x1 - x, h = y1 - y;
            }
            if (width > 0 && (w < o.min_box_side || h < o.min_box_side)) {
                ++plan.skipped_boxes;
                continue;
            }
            Item it;
            it.path = file + "#" + std::to_string(b.id);
            it.source = file;
            it.box = format_box(x, y, w, h);
            it.label = b.label;
            it.split = split;
            it.stat = found.stat[f];
            plan.labelled += !it.label.empty();
            plan.items.push_back(std::move(it));
        }
    }
    plan.unscanned_labelled = annotations.by_key.size() - matched.size();
    if (plan.unscanned_labelled)
        plan.warnings.push_back("labels: " + std::to_string(plan.unscanned_labelled) +
                                " labelled file(s) are not under the inputs and were not scanned");
    if (o.objects) {
        plan.warnings.push_back("objects: " + std::to_string(plan.items.size()) + " of " +
                                std::to_string(boxes_total) + " boxes scanned; " +
                                std::to_string(plan.skipped_boxes) + " skipped (a side below " +
                                std::to_string(o.min_box_side) + " px or outside the image)");
        if (plan.images_without_boxes)
            plan.warnings.push_back("objects: " + std::to_string(plan.images_without_boxes) +
                                    " image(s) without boxes were not scanned");
    }
    return plan;
}

} // namespace vislint::pipeline
