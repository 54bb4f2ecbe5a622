// Where one image's time goes: each per-image stage of a scan timed on its own, single-threaded,
// over the same files (the scan overlaps them on worker threads, so its run.json can only give
// stage totals). Prints one line per stage: ms per image and share of the per-image total.
//
//   profile_stages --list FILES.txt [--n 2000] [--model default] [--model-size 160]
//                  [--precision auto|f32|bf16|int8] [--json OUT]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "embed/embedder.h"
#include "hash/hashes.h"
#include "io/decode.h"
#include "quality/stats.h"
#include "store/db.h"
#include "store/image_record.h"

using Clock = std::chrono::steady_clock;
using namespace vislint;

int main(int argc, char** argv) {
    std::string list, model = "default", json_out, precision = "auto";
    int n = 2000, model_size = 160;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--list") list = argv[i + 1];
        else if (a == "--n") n = std::stoi(argv[i + 1]);
        else if (a == "--model") model = argv[i + 1];
        else if (a == "--model-size") model_size = std::stoi(argv[i + 1]);
        else if (a == "--json") json_out = argv[i + 1];
        else if (a == "--precision") precision = argv[i + 1];
        else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
    }
    std::vector<std::string> files;
    std::ifstream in(list);
    for (std::string line; std::getline(in, line) && int(files.size()) < n;)
        if (!line.empty()) files.push_back(line);
    if (files.empty()) { std::fprintf(stderr, "no files in --list %s\n", list.c_str()); return 2; }
    cv::setNumThreads(1);

    std::map<std::string, double> t; // seconds per stage
    auto timed = [&](const char* stage, auto&& f) {
        auto t0 = Clock::now();
        f();
        t[stage] += std::chrono::duration<double>(Clock::now() - t0).count();
    };
    ModelOptions mo;
    mo.model = model;
    mo.input_size = model_size;
    mo.precision = precision;
    embed::ModelSpec spec = embed::resolve_model(mo);
    embed::Embedder net(spec);
    std::string db_path = "/tmp/vislint_profile_stages.db";
    std::remove(db_path.c_str());
    store::Db db(db_path, false);
    store::Stmt upsert(db.handle(), store::image_upsert_sql());
    std::vector<cv::Mat> batch;
    std::vector<float> out;
    db.exec("BEGIN");
    for (size_t i = 0; i < files.size(); ++i) {
        std::vector<uint8_t> bytes;
        timed("read file", [&] {
            std::ifstream f(files[i], std::ios::binary | std::ios::ate);
            bytes.resize(size_t(std::max<std::streamoff>(0, f.tellg())));
            f.seekg(0);
            f.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
        });
        store::ImageRecord r;
        r.id = int64_t(i);
        r.path = files[i];
        timed("content hash", [&] { r.file_hash = hash::content_hash(bytes.data(), bytes.size()); });
        io::DecodedImage img;
        io::DecodeOptions dopt;
        timed("decode", [&] { r.status = io::decode_image(bytes.data(), bytes.size(), dopt, &img); });
        if (!r.status.ok()) continue;
        cv::Mat work, gray;
        timed("resize to working size", [&] { work = io::working_image(img, 256); });
        timed("pixel hash", [&] { r.pixel_hash = hash::pixel_hash(img.pixels); });
        timed("grey image", [&] { gray = quality::to_gray(work); });
        timed("quality stats", [&] { r.stats = quality::compute_stats(work, gray); });
        timed("perceptual hashes", [&] {
            const hash::PerceptualHashes ph = hash::perceptual_hashes(gray);
            r.phash = ph.phash;
            r.dhash = ph.dhash;
        });
        timed("model input (resize + convert)", [&] { batch.push_back(embed::model_input(work, spec.input_size)); });
        if (batch.size() == 16 || i + 1 == files.size()) {
            timed("inference", [&] { net.embed(batch, &out); });
            batch.clear();
        }
        r.has_pixels = true;
        timed("DB write", [&] {
            store::bind_image(upsert, r);
            upsert.run();
        });
    }
    db.exec("COMMIT");
    double total = 0;
    for (const auto& [k, v] : t) total += v;
    nlohmann::json j;
    j["images"] = files.size();
    j["model"] = spec.id;
    j["input_size"] = spec.input_size;
    j["precision"] = spec.precision;
    std::printf("%zu images, model %s at %d px, %s, 1 thread\n", files.size(), model.c_str(), spec.input_size,
                spec.precision.c_str());
    for (const auto& [k, v] : t) {
        std::printf("%-32s %8.3f ms/img  %5.1f %%\n", k.c_str(), 1e3 * v / double(files.size()), 100 * v / total);
        j["ms_per_image"][k] = 1e3 * v / double(files.size());
    }
    std::printf("%-32s %8.3f ms/img  (%.0f img/s on one core)\n", "total", 1e3 * total / double(files.size()),
                double(files.size()) / total);
    j["total_ms_per_image"] = 1e3 * total / double(files.size());
    if (!json_out.empty()) std::ofstream(json_out) << j.dump(2) << "\n";
    std::remove(db_path.c_str());
    return 0;
}
