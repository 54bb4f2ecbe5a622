#include <gtest/gtest.h>

#include <map>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "embed/embedder.h"
#include "graph/similarity.h"
#include "store/features.h"
#include "test_util.h"
#include "vislint/embed.h"
#include "vislint/status.h"

namespace fs = std::filesystem;

namespace vislint {
namespace {

TEST(Features, RowsByIdWithZeroHolesAndNumpyHeader) {
    std::string dir = testing::temp_dir("features");
    std::string path = dir + "/features.npy";
    const int dim = 5;
    {
        store::FeatureFile f(path, dim, true);
        const float a[dim] = {0.5f, -0.25f, 1.0f, 0.125f, 0.0f};
        const float b[dim] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
        f.write_row(3, a); // out of order, with holes at 0..2
        f.write_row(1, b);
        f.close(5);
    }
    auto shape = store::feature_file_shape(path);
    EXPECT_EQ(shape.first, 5);
    EXPECT_EQ(shape.second, dim);
    EXPECT_EQ(fs::file_size(path), 128u + 5 * dim * 2);
    int d = 0;
    std::vector<float> rows = store::read_feature_rows(path, {3, 1, 0, 4}, &d);
    EXPECT_EQ(d, dim);
    EXPECT_FLOAT_EQ(rows[0], 0.5f);
    EXPECT_FLOAT_EQ(rows[1], -0.25f);
    EXPECT_NEAR(rows[dim + 2], 0.3f, 1e-3);
    for (int j = 0; j < 2 * dim; ++j) EXPECT_EQ(rows[2 * dim + j], 0.f);
    EXPECT_THROW(store::read_feature_rows(path, {5}, &d), Error);
    // Re-opening with the same dim keeps rows; another dim starts over.
    {
        store::FeatureFile f(path, dim, false);
        f.close(5);
    }
    EXPECT_FLOAT_EQ(store::read_feature_rows(path, {3}, &d)[0], 0.5f);
    fs::remove_all(dir);
}

TEST(Similarity, NearPairsClustersAndTheIsolatedImage) {
    // Five pairs of near-identical images (sim 0.97), loosely related across pairs (0.6), and
    // one image unlike everything (0.1).
    const int n = 11, k = 3;
    std::vector<graph::DupItem> items(n);
    for (int i = 0; i < n; ++i) {
        items[i].id = 100 + i;
        items[i].file_hash.low = uint64_t(i);
        items[i].pixel_hash.low = uint64_t(i);
        items[i].width = items[i].height = 64 + i;
    }
    std::vector<int64_t> ids(n * k);
    std::vector<float> sims(n * k);
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < k; ++j) {
            int other;
            float s;
            if (i == 10) {
                other = j;
                s = 0.1f;
            } else if (j == 0) {
                other = i ^ 1;
                s = 0.97f;
            } else {
                other = (i + 2 * j) % 10;
                s = 0.6f;
            }
            ids[i * k + j] = other;
            sims[i * k + j] = s;
        }
    }
    graph::Neighbours nn{n, k, ids.data(), sims.data()};
    Thresholds t;
    graph::SimilarityResult r = graph::analyse_similarity(nn, items, graph::find_exact(items), t);
    ASSERT_EQ(r.near.pairs.size(), 5u);
    for (const auto& p : r.near.pairs) {
        EXPECT_EQ((p.a - 100) ^ 1, p.b - 100);
        EXPECT_FLOAT_EQ(float(p.score), 0.97f);
    }
    ASSERT_EQ(r.near.groups.size(), 5u);
    EXPECT_EQ(r.near.groups[0].keeper, 101); // the larger of 100 and 101
    EXPECT_EQ(r.clusters.size(), 5u);        // pairs only: 0.6 < cluster threshold
    ASSERT_FALSE(r.outliers.empty());
    EXPECT_EQ(r.outliers.front(), 10u);
    EXPECT_NEAR(r.isolation[10].score, 0.9, 1e-6);
    EXPECT_EQ(r.outliers.size(), 1u);
}

TEST(Similarity, ACheckDropsLookAlikesAndAdmitsCopiesBelowTheThreshold) {
    // A chain of 6 images: 0-1 at 0.97, 2-3 at 0.95, 4-5 at 0.85 (under the 0.90 near threshold,
    // over the 0.50 copy-candidate level), 1-2 at 0.3. The check calls 0-1 look-alikes, 2-3 "does not
    // apply" and 4-5 copies.
    const int n = 6, k = 1;
    std::vector<graph::DupItem> items(n);
    for (int i = 0; i < n; ++i) {
        items[i].id = i;
        items[i].file_hash.low = items[i].pixel_hash.low = uint64_t(i);
        items[i].width = items[i].height = 28;
    }
    std::vector<int64_t> ids = {1, 0, 3, 2, 5, 4};
    std::vector<float> sims = {0.97f, 0.97f, 0.95f, 0.95f, 0.85f, 0.85f};
    graph::Neighbours nn{n, k, ids.data(), sims.data()};
    Thresholds t;
    std::map<std::pair<size_t, size_t>, int> calls;
    graph::PairCheck check = [&](graph::IndexPair* p, bool confirm) {
        EXPECT_EQ(confirm, p->a == 4) << p->a; // only the pair under the threshold needs a copy
        ++calls[{p->a, p->b}];
        if (p->a == 0) return graph::Verdict::kNotCopy;
        if (p->a == 2) return graph::Verdict::kNotApplicable;
        p->detail += "; copy";
        return graph::Verdict::kCopy;
    };
    graph::SimilarityResult r = graph::analyse_similarity(nn, items, graph::find_exact(items), t, {}, check);
    ASSERT_EQ(r.near.pairs.size(), 2u);
    EXPECT_EQ(r.near.pairs[0].a + r.near.pairs[0].b, 5); // 2-3, kept without evidence of a copy
    EXPECT_EQ(r.near.pairs[1].a + r.near.pairs[1].b, 9); // 4-5, a copy under the threshold
    EXPECT_FLOAT_EQ(float(r.near.pairs[1].score), 0.85f);
    EXPECT_DOUBLE_EQ(r.near.pairs[1].threshold, t.copy_candidate);
    EXPECT_NE(r.near.pairs[1].detail.find("0.8500 < 0.9000; copy"), std::string::npos) << r.near.pairs[1].detail;
    for (const auto& [pair, count] : calls) EXPECT_EQ(count, 1) << pair.first << "-" << pair.second;
    EXPECT_EQ(calls.size(), 3u);
    // Without the check, 4-5 is no near duplicate and 0-1 is one.
    graph::SimilarityResult plain = graph::analyse_similarity(nn, items, graph::find_exact(items), t);
    ASSERT_EQ(plain.near.pairs.size(), 2u);
    EXPECT_EQ(plain.near.pairs[0].a + plain.near.pairs[0].b, 1);
}

TEST(Embedder, MatchesTheTorchReference) {
    // Reference written by `make model` (tools/model/export_model.py): torch features of the
    // exact S x S PNGs fed to the model.
    fs::path ref_dir = fs::path(embed::cache_dir()) / "efficientnet_lite0" / "reference";
    std::ifstream in(ref_dir / "reference.json");
    ASSERT_TRUE(in) << "no model reference in " << ref_dir << "; run `make model`";
    nlohmann::json ref;
    in >> ref;
    int checked = 0;
    for (const auto& e : ref.at("entries")) {
        ModelOptions mo;
        mo.input_size = e.at("size").get<int>();
        mo.precision = "f32";
        Embedding got = embed_image((ref_dir / e.at("png").get<std::string>()).string(), mo);
        std::vector<double> want = e.at("features").get<std::vector<double>>();
        ASSERT_EQ(got.features.size(), want.size());
        double dot = 0, norm = 0;
        for (size_t j = 0; j < want.size(); ++j) {
            dot += got.features[j] * want[j];
            norm += want[j] * want[j];
        }
        EXPECT_GT(dot / std::sqrt(norm), 1 - 1e-4) << e.at("png");
        size_t top = std::max_element(got.logits.begin(), got.logits.end()) - got.logits.begin();
        EXPECT_EQ(int(top), e.at("top5_indices")[0].get<int>()) << e.at("png");
        ++checked;
    }
    EXPECT_EQ(checked, 6);
}

TEST(Embedder, AutoPrecisionIsBf16ExactlyWhereTheCpuHasItAndStaysCloseToF32) {
    const std::vector<std::string> caps = embed::runtime_capabilities();
    ASSERT_FALSE(caps.empty()) << "OpenVINO's CPU plugin did not load";
    const bool bf16 = std::find(caps.begin(), caps.end(), "BF16") != caps.end();
    ModelOptions mo;
    EXPECT_EQ(mo.precision, "auto"); // the default: bf16 measured within noise of f32 (docs/benchmarks.md)
    mo.precision = "auto";
    const embed::ModelSpec automatic = embed::resolve_model(mo);
    EXPECT_EQ(automatic.precision, bf16 ? "bf16" : "f32");
    mo.precision = "f32";
    const embed::ModelSpec f32 = embed::resolve_model(mo);
    EXPECT_EQ(f32.precision, "f32");
    EXPECT_EQ(f32.id == automatic.id, !bf16); // the precision is part of the model id
    mo.precision = "bf16";
    if (!bf16) {
        EXPECT_THROW(embed::resolve_model(mo), Error);
        return;
    }
    const fs::path png = fs::path(embed::cache_dir()) / "efficientnet_lite0" / "reference" / "chelsea.png";
    mo.precision = "f32";
    Embedding a = embed_image(png.string(), mo);
    mo.precision = "bf16";
    Embedding b = embed_image(png.string(), mo);
    ASSERT_EQ(a.features.size(), b.features.size());
    double dot = 0;
    for (size_t j = 0; j < a.features.size(); ++j) dot += double(a.features[j]) * b.features[j];
    EXPECT_GT(dot, 0.98);
    EXPECT_LT(dot, 1 - 1e-7); // it did run at another precision
    EXPECT_NE(a.model_id, b.model_id);
}

// $VISLINT_CACHE pointed elsewhere for one scope.
struct CacheDir {
    std::string saved;
    bool had = false;
    explicit CacheDir(const std::string& dir) {
        if (const char* c = std::getenv("VISLINT_CACHE")) had = true, saved = c;
        setenv("VISLINT_CACHE", dir.c_str(), 1);
    }
    ~CacheDir() { had ? setenv("VISLINT_CACHE", saved.c_str(), 1) : unsetenv("VISLINT_CACHE"); }
};

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double dot = 0;
    for (size_t j = 0; j < a.size(); ++j) dot += double(a[j]) * b[j];
    return dot; // both are L2-normalised
}

TEST(Embedder, Int8RunsTheQuantizedModelThatMakeModelBuilt) {
    const fs::path dir = fs::path(embed::cache_dir()) / "efficientnet_lite0";
    nlohmann::json meta;
    std::ifstream(dir / "model.json") >> meta;
    ASSERT_TRUE(meta.contains("int8")) << "model.json names no int8 model; run `make model`";
    ModelOptions mo;
    mo.precision = "int8";
    const embed::ModelSpec spec = embed::resolve_model(mo);
    EXPECT_EQ(spec.precision, "int8");
    EXPECT_EQ(fs::path(spec.path), dir / meta["int8"]["file"].get<std::string>());
    mo.precision = "f32";
    const embed::ModelSpec f32 = embed::resolve_model(mo);
    EXPECT_NE(spec.id, f32.id);
    // The reference photos: int8 features stay near f32's (export_model.py measured >= 0.92 on
    // these at every size) but differ (it did run the quantized network).
    for (const char* png : {"chelsea.png", "coffee.png"}) {
        const std::string path = (dir / "reference" / png).string();
        mo.precision = "f32";
        Embedding a = embed_image(path, mo);
        mo.precision = "int8";
        Embedding b = embed_image(path, mo);
        ASSERT_EQ(a.features.size(), b.features.size());
        EXPECT_GT(cosine(a.features, b.features), 0.9) << png;
        EXPECT_LT(cosine(a.features, b.features), 1 - 1e-4) << png;
        EXPECT_EQ(b.model_id, spec.id);
    }
}

TEST(Embedder, Int8NeedsAQuantizedModelAndSaysHowToGetOne) {
    const fs::path dir = fs::path(embed::cache_dir()) / "efficientnet_lite0";
    nlohmann::json meta;
    std::ifstream(dir / "model.json") >> meta;
    ASSERT_TRUE(meta.contains("int8")) << "run `make model`";
    auto error_of = [](const ModelOptions& mo) -> std::string {
        try {
            embed::resolve_model(mo);
        } catch (const Error& e) {
            return e.what();
        }
        return "(no error)";
    };
    const std::string tmp = testing::temp_dir("int8");
    {
        // A cache whose int8 IR lost its weights, then one whose model.json predates int8.
        const fs::path copy = fs::path(tmp) / "efficientnet_lite0";
        fs::create_directories(copy);
        fs::copy_file(dir / "model.json", copy / "model.json");
        fs::copy_file(dir / meta["int8"]["file"].get<std::string>(), copy / meta["int8"]["file"].get<std::string>());
        CacheDir cache(tmp);
        ModelOptions mo;
        mo.precision = "int8";
        std::string e = error_of(mo);
        EXPECT_NE(e.find("int8 file " + (copy / "efficientnet_lite0_int8.bin").string() + " is missing; run `make model`"),
                  std::string::npos) << e;
        meta.erase("int8");
        std::ofstream(copy / "model.json") << meta.dump();
        e = error_of(mo);
        EXPECT_NE(e.find("model.json names no int8 model"), std::string::npos) << e;
        EXPECT_NE(e.find("run `make model`"), std::string::npos) << e;
    }
    // A user's float model at int8, and a quantized one at f32: each refused, naming the file.
    ModelOptions mo;
    mo.model = (dir / "efficientnet_lite0.onnx").string();
    mo.precision = "int8";
    std::string e = error_of(mo);
    EXPECT_NE(e.find("--precision int8 needs a quantized model"), std::string::npos) << e;
    EXPECT_NE(e.find(mo.model + " has none"), std::string::npos) << e;
    mo.precision = "f32";
    EXPECT_EQ(error_of(mo), "(no error)");
    mo.model = (dir / "efficientnet_lite0_int8.xml").string();
    e = error_of(mo);
    EXPECT_NE(e.find("model " + mo.model + " is quantized (int8); pass --precision int8"), std::string::npos) << e;
    mo.precision = "int8"; // and at int8 a user's quantized IR is taken as it is
    mo.output = "features";
    mo.mean = {127};
    mo.std = {128};
    mo.input_size = 160;
    const embed::ModelSpec user = embed::resolve_model(mo);
    EXPECT_EQ(user.precision, "int8");
    EXPECT_EQ(user.path, mo.model);
    mo.precision = "auto"; // auto runs a quantized model at int8, a float one never
    EXPECT_EQ(embed::resolve_model(mo).precision, "int8");
    mo.model = (dir / "efficientnet_lite0.onnx").string();
    EXPECT_NE(embed::resolve_model(mo).precision, "int8");
    fs::remove_all(tmp);
}

TEST(Embedder, UnknownPrecisionsAreRefusedByName) {
    ModelOptions mo;
    mo.precision = "fp16";
    try {
        embed::check_model_options(mo);
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "--precision must be auto, f32, bf16 or int8 (got 'fp16')");
    }
}

TEST(Embedder, CpuFlagsAreThoseOfProcCpuinfo) {
    std::ifstream in("/proc/cpuinfo");
    std::string line, flags;
    while (std::getline(in, line))
        if (line.rfind("flags", 0) == 0) {
            flags = " " + line.substr(line.find(':') + 1) + " ";
            break;
        }
    const std::vector<std::string> got = embed::cpu_flags();
    for (const char* f : {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}) {
        const bool present = flags.find(std::string(" ") + f + " ") != std::string::npos;
        EXPECT_EQ(std::find(got.begin(), got.end(), f) != got.end(), present) << f;
    }
}

TEST(Embedder, ConcurrentCallersShareOneCompiledModel) {
    // Two streams, four threads: every caller gets the single-caller result.
    ModelOptions mo;
    mo.precision = "f32";
    const embed::ModelSpec spec = embed::resolve_model(mo);
    embed::Embedder e(spec, 2, 2);
    EXPECT_EQ(e.streams(), 2);
    const fs::path ref = fs::path(embed::cache_dir()) / "efficientnet_lite0" / "reference";
    std::vector<cv::Mat> inputs;
    for (const char* name : {"chelsea.png", "coffee.png"}) {
        cv::Mat img = testing::load_bgr((ref / name).string());
        ASSERT_FALSE(img.empty()) << name;
        inputs.push_back(embed::model_input(img, spec.input_size));
    }
    std::vector<float> want;
    e.embed(inputs, &want);
    ASSERT_EQ(want.size(), size_t(2 * e.dim()));
    std::vector<std::vector<float>> got(4);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t)
        threads.emplace_back([&, t] {
            for (int r = 0; r < 3; ++r) e.embed(inputs, &got[t]);
        });
    for (auto& th : threads) th.join();
    for (const auto& g : got) {
        ASSERT_EQ(g.size(), want.size());
        for (size_t j = 0; j < want.size(); ++j) ASSERT_NEAR(g[j], want[j], 1e-5);
    }
}

TEST(Embedder, MissingModelSaysHowToFixIt) {
    ModelOptions mo;
    mo.model = "/nonexistent/model.onnx";
    try {
        embed::resolve_model(mo);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("model file not found"), std::string::npos);
    }
}

} // namespace
} // namespace vislint
