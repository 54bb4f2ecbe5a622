#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

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
        Embedding got = embed_image((ref_dir / e.at("png").get<std::string>()).string(), mo);
        std::vector<double> want = e.at("features").get<std::vector<double>>();
        ASSERT_EQ(got.features.size(), want.size());
        double dot = 0, norm = 0;
        for (size_t j = 0; j < want.size(); ++j) {
            dot += got.features[j] * want[j];
            norm += want[j] * want[j];
        }
        EXPECT_GT(dot / std::sqrt(norm), 1 - 1e-3) << e.at("png");
        size_t top = std::max_element(got.logits.begin(), got.logits.end()) - got.logits.begin();
        EXPECT_EQ(int(top), e.at("top5_indices")[0].get<int>()) << e.at("png");
        ++checked;
    }
    EXPECT_EQ(checked, 6);
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
