#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vislint {

// Thresholds of the quality flags and of hash near-duplicates. Each default is documented in
// docs/workdir.md together with the score it is compared against. Changing a threshold does not
// require re-analysing images: a re-scan into the same work dir re-derives all issue rows.
struct Thresholds {
    double blurry = 0.01;         // flag when relative sharpness (Laplacian var / grey var) < this
    double dark = 50.0;           // flag when the 99th-percentile grey level (0..255) < this
    double bright = 205.0;        // flag when the 1st-percentile grey level (0..255) > this
    double low_information = 0.5; // flag when grey-level entropy (bits, 0..8) < this
    double grayscale_colour_fraction = 0.002; // grayscale when fewer colourful pixels than this
    double odd_aspect_ratio = 3.0;  // flag when max(w/h, h/w) > this
    double odd_size_ratio = 4.0;    // flag when sqrt(area) differs from the median's by > this factor
    int odd_size_min_side = 16;     // ... or when the shorter side is below this many pixels
    int hash_radius = 10;           // pHash Hamming radius for near_duplicate (model none) ...
    int dhash_radius = 8;           // ... and the pair's dHash distance must be within this too
    // A near_duplicate pair of two small images (longer side <= 64 px, e.g. Fashion-MNIST's 28 px
    // items, icons) must also match pixel for pixel: the correlation of their grey thumbnails
    // (best of 1-px shifts and a mirror image, hash/small_copy.h) >= this; 0 = no check. At this
    // size embeddings and hashes pair different products of one kind as readily as copies.
    // 0.99: on Fashion-MNIST every planted copy (re-encode, 1-px shift, brightness, 2x upscale,
    // JPEG 80) scores >= 0.986 at native size, and 0 of 6,000 sampled look-alike pairs >= 0.99.
    double small_copy = 0.99;
    // With a model: kNN edges from this similarity up are near duplicates too when a copy check
    // confirms them: the pixel check above for small images, and for the others a hash of a
    // transformed view (mirror image, 80-90 % centre crop, +-5 / +-10 degree rotation) within
    // hash_radius / dhash_radius of the other image's hashes. A crop or a rotation of clip art
    // can sit far under near_duplicate (cosine 0.3-0.9).
    double copy_candidate = 0.5;
    // With an embedding model (cosine similarity of L2-normalised embeddings):
    double near_duplicate = 0.90;   // near_duplicate pairs: similarity >= this (or a hash match)
    double cluster = 0.80;          // clusters: connected components of kNN edges >= this
    double outlier_z = 3.5;         // outlier: robust z-score of the isolation score above this
    // With labels and a model: label_issue when the kNN vote's confidence that the given label is
    // wrong (score in 0..1) is at least this and another label wins the vote. 0.9: best F1 of
    // 0.5..0.9 on Fashion-MNIST with 10 % flips (bench/labels.py); 0.5 flagged 2.4x the flips.
    double label_issue = 0.9;
};

// One label given in memory (the Python API's `labels=` DataFrame).
struct LabelRow {
    std::string path;  // absolute, or relative to the current directory
    std::string label; // empty = unlabelled
    std::string split; // empty = none given (automatic splits may still apply)
};

// Where labels, splits and boxes come from. All sources are optional and may be combined (a
// later source overrides an earlier one per image: labels file, then rows, then COCO, then YOLO).
struct LabelOptions {
    // "folder" = each image's parent folder name (ImageFolder layout), or the path of a CSV file
    // with a header naming `path` and `label` columns and optionally `split`; paths relative to
    // the CSV's own folder or absolute.
    std::string labels;
    std::vector<LabelRow> rows;
    std::string coco;          // COCO JSON (images, annotations, categories)
    std::string yolo;          // YOLO dataset folder: images/ + labels/ and data.yaml or classes.txt
    bool objects = false;      // every box of COCO / YOLO becomes an item "image.jpg#box_id"
    int min_box_side = 8;      // --objects: boxes with a side below this many px are skipped
    double box_margin = 0.1;   // --objects: crop margin, as a fraction of the box side
    // Splits from path components named train / val / valid / validation / test below an input
    // folder (canonical names train, val, test). A `split` column always wins.
    bool auto_splits = true;
};

// The embedding model. "default" = EfficientNet-Lite0 exported by `make model` into the cache
// dir ($VISLINT_CACHE, default ~/.cache/vislint); "none" = hash-only mode; otherwise the path of
// any ONNX image model with NCHW float input, or of an OpenVINO IR .xml.
struct ModelOptions {
    std::string model = "default";
    int input_size = 0;        // square input side in px; 0 = the model's own (model.json) or 224
    std::vector<double> mean;  // per channel (RGB), pixel units 0..255; empty = model's or ImageNet
    std::vector<double> std;   // per channel (RGB), pixel units; empty = model's or ImageNet
    std::string output;        // output layer to use as the embedding; empty = model's / last
    int batch_size = 16;
    // Inference precision: "auto" (bf16 where the CPU supports it, else f32), "f32", "bf16", or
    // "int8" (the default model's NNCF-quantized IR, or a user's quantized model). The one that
    // ran is in run.json. auto is the default: bf16's duplicate, outlier, label and leak figures
    // are within corpus-to-corpus noise of f32's, at 1.7x its speed (bench/variants.py,
    // docs/benchmarks.md). auto never picks int8: on this CPU it is slower than bf16, and no CPU
    // without bf16 has been measured.
    std::string precision = "auto";
};

// The largest --max-pixels: 10^12 pixels (3 TB as 8-bit RGB) is beyond any decodable image, and
// keeps width x height comparisons far from int64 overflow.
constexpr int64_t kMaxPixelsLimit = 1'000'000'000'000;

struct ScanOptions {
    // Folders (walked recursively), single image files, or text files listing one path per line
    // (relative paths resolve against the list file's folder). May be empty when a label source
    // names the images (labels CSV, COCO, YOLO folder).
    std::vector<std::string> inputs;
    std::string work_dir;
    ModelOptions model;
    int threads = 0;                    // 0 = all hardware threads
    int64_t max_pixels = 100'000'000;   // refuse images larger than this (width x height), 1..kMaxPixelsLimit
    // Per-image memory limit in MiB: a file larger than this, or whose decode is estimated from
    // its header to allocate more, is a `broken` / too_large row (docs/reliability.md).
    int64_t max_image_memory_mb = 512;
    Thresholds thresholds;
    int k = 10; // neighbours per image in the kNN graph
    // kNN index dimension: -1 = automatic (PCA to 256 when the embeddings have more dimensions
    // and more than 8,192 images are embedded), 0 = never reduce, N = PCA to N dimensions
    // whenever the embeddings have more. Similarities are re-scored at full dimension either way.
    int index_dim = -1;
    // Embeddings instead of a model: a .npy (n x d, float16 or float32), row i = item i.
    // With `names` and no inputs: the embeddings-only mode (items are the lines of `names`, any
    // strings, stored verbatim and never opened; no per-image stats or hashes).
    std::string embeddings;
    std::string names;
    LabelOptions labels;
    // Discard the work dir's database, features and index first and analyse everything again
    // (the fix for a damaged work dir).
    bool rebuild = false;
};

// Throws vislint::Error naming the first invalid option ("--dark-threshold must be ...").
void validate(const ScanOptions& options);

} // namespace vislint
