// The work dir's building blocks: features.npy rows and their check, the writer's lock.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "store/features.h"
#include "store/work_dir.h"
#include "test_util.h"
#include "vislint/status.h"

namespace fs = std::filesystem;
using namespace vislint;

namespace {

std::vector<float> unit_row(int dim, int seed) {
    std::vector<float> v(static_cast<size_t>(dim));
    double n = 0;
    for (int j = 0; j < dim; ++j) {
        v[size_t(j)] = float(std::sin(0.37 * (j + 1) * (seed + 1)));
        n += double(v[size_t(j)]) * v[size_t(j)];
    }
    for (float& x : v) x = float(x / std::sqrt(n));
    return v;
}

} // namespace

TEST(FeatureFile, SyncedRowsAreInsideTheShapeAndDamagedRowsAreFound) {
    const std::string dir = vislint::testing::temp_dir("features");
    const std::string path = dir + "/features.npy";
    const int dim = 64;
    {
        store::FeatureFile f(path, dim, true);
        for (int id = 0; id < 6; ++id) f.write_row(id, unit_row(dim, id).data());
        f.sync();
        // Not closed (as after kill -9): the header already covers the synced rows.
        EXPECT_EQ(store::feature_file_shape(path), (std::pair<int64_t, int>{6, dim}));
        f.zero_row(2);
        std::vector<float> torn = unit_row(dim, 3);
        std::fill(torn.begin() + dim / 2, torn.end(), 0.f); // half of the row never arrived
        f.write_row(3, torn.data());
        std::vector<float> nan = unit_row(dim, 4);
        nan[5] = std::numeric_limits<float>::quiet_NaN();
        f.write_row(4, nan.data());
        f.close(6);
    }
    EXPECT_EQ(store::bad_feature_rows(path, {0, 1, 2, 3, 4, 5, 9}), (std::vector<int64_t>{2, 3, 4, 9}));
    int d = 0;
    std::vector<float> back = store::read_feature_rows(path, {1}, &d);
    ASSERT_EQ(d, dim);
    std::vector<float> want = unit_row(dim, 1);
    for (int j = 0; j < dim; ++j) EXPECT_NEAR(back[size_t(j)], want[size_t(j)], 1e-3);
    fs::remove_all(dir);
}

TEST(WorkDirLock, SecondWriterIsRefusedUntilTheFirstEnds) {
    const std::string dir = vislint::testing::temp_dir("lock");
    {
        store::WorkDirLock first(dir);
        try {
            store::WorkDirLock second(dir);
            FAIL() << "a second lock was granted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("is in use by another vislint scan"), std::string::npos) << e.what();
        }
    }
    store::WorkDirLock again(dir); // released with the first
    fs::remove_all(dir);
}

TEST(WorkDir, RemoveTmpFilesLeavesEverythingElse) {
    const std::string dir = vislint::testing::temp_dir("tmpfiles");
    fs::create_directories(dir + "/report/thumbs");
    for (const char* name : {"/run.json.tmp", "/report/index.html.tmp", "/report/thumbs/a.jpg.tmp", "/run.json",
                             "/report/thumbs/a.jpg"})
        std::ofstream(dir + name) << "x";
    store::remove_tmp_files(dir);
    EXPECT_FALSE(fs::exists(dir + "/run.json.tmp"));
    EXPECT_FALSE(fs::exists(dir + "/report/index.html.tmp"));
    EXPECT_FALSE(fs::exists(dir + "/report/thumbs/a.jpg.tmp"));
    EXPECT_TRUE(fs::exists(dir + "/run.json"));
    EXPECT_TRUE(fs::exists(dir + "/report/thumbs/a.jpg"));
    fs::remove_all(dir);
}
