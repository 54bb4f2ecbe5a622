// `vislint similar`: embed one image with the scan's model and search the saved index.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "embed/embedder.h"
#include "index/knn_index.h"
#include "io/decode.h"
#include "io/labels.h"
#include "pipeline/analyze.h"
#include "store/db.h"
#include "store/features.h"
#include "store/work_dir.h"
#include "vislint/embed.h"
#include "vislint/results.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint {
namespace {

struct Opened {
    std::unique_ptr<store::Db> db;
    embed::ModelSpec spec;
};

// `need_model`: the query is an image to embed (not a vector).
Opened open_work_dir(const std::string& work_dir, bool need_model = true) {
    Opened o;
    o.db = store::open_results(work_dir);
    std::string model_id = o.db->meta("model");
    if (model_id.empty() || model_id == "none")
        throw Error("work dir " + work_dir + " was scanned with --model none: similarity search needs "
                    "embeddings; re-scan with a model (the default is EfficientNet-Lite0)");
    if (model_id == "embeddings") { // --embeddings --names: vectors of the user's, no model
        if (need_model)
            throw Error("work dir " + work_dir + " holds the vectors given with --embeddings and no model to "
                        "embed an image: search it with a vector (Python Scan.similar(vector))");
        return o;
    }
    ModelOptions mo;
    try {
        auto j = nlohmann::json::parse(o.db->meta("model_options"));
        mo.model = j.at("model").get<std::string>();
        mo.input_size = j.at("input_size").get<int>();
        mo.mean = j.at("mean").get<std::vector<double>>();
        mo.std = j.at("std").get<std::vector<double>>();
        mo.output = j.at("output").get<std::string>();
        mo.precision = j.value("precision", "f32"); // embed the query at the scan's precision
    } catch (const std::exception& e) {
        throw Error("work dir " + work_dir + " has no readable model options: " + e.what());
    }
    // After a cut-short re-scan with another model or input size, the saved index and the
    // features (and the query's embedding) would come from different models: refuse to mix them.
    const std::string index_sig = o.db->meta("index_signature");
    const std::string sig = o.db->meta("analysis_signature");
    const bool legacy = index_sig.empty() && o.db->meta("run_state").empty(); // before index_signature
    if (!legacy && index_sig != sig)
        throw Error("the similarity index in " + work_dir + " was built by an earlier scan (" +
                    (index_sig.empty() ? std::string("none") : index_sig) +
                    ") than the work dir's embeddings (" + sig +
                    "), and the last scan did not finish: re-run the scan into " + work_dir +
                    " before searching");
    o.spec = embed::resolve_model(mo);
    if (o.spec.id != model_id)
        throw Error("the model file changed since " + work_dir + " was scanned; re-scan it first");
    return o;
}

// The query file itself, however it is spelled: its normalised absolute path, and its file
// identity (device + inode, through symlinks) when it exists.
struct QueryFile {
    std::string key;
    bool has_id = false;
    dev_t dev = 0;
    ino_t ino = 0;

    explicit QueryFile(const std::string& path) {
        if (path.empty()) return;
        key = io::path_key(path);
        struct stat st;
        if (::stat(path.c_str(), &st) == 0) {
            has_id = true;
            dev = st.st_dev;
            ino = st.st_ino;
        }
    }
    bool is(const std::string& item) const {
        if (key.empty()) return false;
        if (item == key) return true;
        struct stat st;
        return has_id && ::stat(item.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino;
    }
};

std::vector<SimilarHit> search(const std::string& work_dir, store::Db& db, std::vector<float> vec, int k,
                               const std::string& query_path) {
    if (k < 1 || k > kMaxSimilarK)
        throw Error("-k must be between 1 and " + std::to_string(kMaxSimilarK));
    double norm = 0;
    for (float v : vec) norm += double(v) * v;
    if (!std::isfinite(norm))
        throw Error("the query vector has values that are not finite (NaN or infinity)");
    if (norm == 0)
        throw Error(query_path.empty() ? "the query vector is all zeros"
                                       : "the model gives no usable embedding (all zeros, NaN or infinity) for " +
                                             query_path);
    for (float& v : vec) v = float(v / std::sqrt(norm));
    index::KnnIndex idx = index::KnnIndex::load((fs::path(work_dir) / "index.faiss").string());
    if (int(vec.size()) != idx.dim())
        throw Error("vector has " + std::to_string(vec.size()) + " values; the index has dim " +
                    std::to_string(idx.dim()));
    const QueryFile query(query_path);
    store::Stmt s(db.handle(), "SELECT i.path FROM embedding_index e JOIN images i ON i.id = e.image_id WHERE e.pos = ?");
    // A reduced index re-scores its candidates with the full vectors from features.npy.
    std::unique_ptr<store::FeatureReader> features;
    index::RowSource base;
    if (idx.reduced()) {
        features = std::make_unique<store::FeatureReader>((fs::path(work_dir) / store::kFeaturesName).string());
        base = [&db, &features](const int64_t* pos, int64_t count, float* out) {
            store::Stmt id(db.handle(), "SELECT image_id FROM embedding_index WHERE pos = ?");
            for (int64_t i = 0; i < count; ++i) {
                id.bind(1, pos[i]);
                const bool found = id.step();
                const int64_t image_id = found ? id.int64(0) : -1;
                id.reset();
                // A retired position (its image removed since the index was built) is re-scored
                // as zeros; it is never returned.
                if (found) features->read(&image_id, 1, out + i * features->dim());
                else std::fill_n(out + i * features->dim(), features->dim(), 0.f);
            }
        };
    }
    // Ask for one more than k (the query itself may be a hit); more only when the query file is
    // in the dataset more than once (symlinks or hard links to it), or when positions retired by
    // a re-scan (removed images) took places.
    for (int64_t want = std::min<int64_t>(int64_t(k) + 1, idx.size());; want = std::min(want * 2, idx.size())) {
        if (want < 1) return {};
        std::vector<int64_t> ids(static_cast<size_t>(want));
        std::vector<float> sims(static_cast<size_t>(want));
        idx.search(vec.data(), 1, int(want), ids.data(), sims.data(), base);
        std::vector<SimilarHit> out;
        int64_t left_out = 0, retired = 0;
        for (int64_t j = 0; j < want && int(out.size()) < k; ++j) {
            if (ids[size_t(j)] < 0) continue;
            s.bind(1, ids[size_t(j)]);
            if (s.step()) {
                std::string path = s.text(0);
                if (query.is(path)) ++left_out;
                else out.push_back({path, double(sims[size_t(j)])});
            } else {
                ++retired; // a position whose image was removed since the index was built
            }
            s.reset();
        }
        if (int(out.size()) >= k || want >= idx.size() || (left_out <= 1 && retired == 0)) return out;
    }
}

// The embedder's all-zero row means "no usable output" (zeros, NaN or infinity).
void require_usable(const embed::ModelSpec& spec, const std::vector<float>& v, const std::string& what) {
    if (std::all_of(v.begin(), v.end(), [](float x) { return x == 0; }))
        throw Error("model " + spec.path + " gives no usable embedding (all zeros, NaN or infinity) for " + what);
}

std::vector<float> embed_bgr(const embed::ModelSpec& spec, const cv::Mat& working) {
    embed::Embedder e(spec);
    std::vector<float> out;
    e.embed({embed::model_input(working, spec.input_size)}, &out);
    require_usable(spec, out, "the given pixels");
    return out;
}

// Decode, resize, normalise, infer: the scan's own path for one file.
Embedding embed_file(const embed::ModelSpec& spec, const std::string& path) {
    store::ImageRecord r;
    r.path = path;
    pipeline::AnalyzeOptions aopt;
    aopt.model_size = spec.input_size;
    cv::Mat input;
    pipeline::analyze_file(aopt, &r, &input);
    if (!r.status.ok()) throw Error("cannot read image " + path + ": " + r.status.to_string());
    embed::Embedder e(spec);
    Embedding out;
    e.embed({input}, &out.features, &out.logits);
    require_usable(spec, out.features, path);
    out.model_id = spec.id;
    out.input_size = spec.input_size;
    return out;
}

} // namespace

Embedding embed_image(const std::string& path, const ModelOptions& model) {
    if (model.model == "none") throw Error("--model none has no embeddings");
    return embed_file(embed::resolve_model(model), path);
}

std::vector<SimilarHit> similar(const std::string& work_dir, const std::string& image, int k) {
    Opened o = open_work_dir(work_dir);
    return search(work_dir, *o.db, embed_file(o.spec, image).features, k, image);
}

std::vector<SimilarHit> similar_to_vector(const std::string& work_dir, const float* vec, int dim, int k) {
    Opened o = open_work_dir(work_dir, false);
    return search(work_dir, *o.db, std::vector<float>(vec, vec + dim), k, "");
}

std::vector<SimilarHit> similar_to_pixels(const std::string& work_dir, const uint8_t* bgr, int width,
                                          int height, int k) {
    Opened o = open_work_dir(work_dir);
    cv::Mat img(height, width, CV_8UC3, const_cast<uint8_t*>(bgr));
    io::DecodedImage d;
    d.pixels = img;
    d.width = width;
    d.height = height;
    d.channels = 3;
    return search(work_dir, *o.db, embed_bgr(o.spec, io::working_image(d, 256)), k, "");
}

} // namespace vislint
