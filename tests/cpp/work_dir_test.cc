// The work dir's building blocks: features.npy rows and their check, the writer's lock.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <set>

#include "store/features.h"
#include "store/issue_writer.h"
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

// The issues table holds exactly the rows of the last derivation, and rows derived again
// unchanged keep their place (their row id).
TEST(IssueWriter, WritesTheDifferenceAndLeavesTheRowsOfAFreshWrite) {
    const std::string dir = vislint::testing::temp_dir("issue_writer");
    store::Db db(dir + "/t.db", false);
    struct Row {
        std::string type;
        int64_t id;
        int64_t other; // -1 = none
        double score, threshold;
        std::string detail;
    };
    auto write = [&](const std::vector<Row>& rows) {
        db.exec("BEGIN");
        store::IssueWriter w(db);
        for (const Row& r : rows) {
            const int64_t* other = r.other >= 0 ? &r.other : nullptr;
            w.add(r.type, r.id, other, r.score, std::isnan(r.threshold) ? nullptr : &r.threshold, r.detail);
        }
        w.finish();
        db.exec("COMMIT");
        return std::vector<uint64_t>{w.kept(), w.inserted(), w.deleted()};
    };
    auto table = [&] {
        std::multiset<std::string> out;
        store::Stmt s(db.handle(), "SELECT type, image_id, other_id, score, threshold, detail FROM issues");
        while (s.step())
            out.insert(s.text(0) + "|" + std::to_string(s.int64(1)) + "|" +
                       (s.is_null(2) ? "-" : std::to_string(s.int64(2))) + "|" +
                       (s.is_null(3) ? "null" : std::to_string(s.real(3))) + "|" +
                       (s.is_null(4) ? "null" : std::to_string(s.real(4))) + "|" + s.text(5));
        return out;
    };
    auto rowid_of = [&](const std::string& type, int64_t id) {
        store::Stmt s(db.handle(), "SELECT id FROM issues WHERE type = ? AND image_id = ?");
        s.bind(1, type).bind(2, id);
        return s.step() ? s.int64(0) : int64_t(-1);
    };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Row a{"near_duplicate", 1, 2, 0.97, 0.9, "cosine 0.970"};
    const Row b{"dark", 3, -1, 0.1, 0.2, "mean 0.100"};
    const Row c{"outlier", 4, 5, 0.5, 0.4, "isolation"};
    const Row n{"broken", 6, -1, nan, nan, "cannot decode"};
    EXPECT_EQ(write({a, b, c, c, n}), (std::vector<uint64_t>{0, 5, 0}));
    const int64_t a_row = rowid_of("near_duplicate", 1);
    Row b2 = b;
    b2.score = 0.05; // changed
    const Row d{"leak", 7, 8, 0.99, 0.9, "train/val"};
    const std::vector<Row> second{d, n, c, b2, a};
    // a, c (once) and the NULL-score row stay; b2 and d are new; b and the second c go.
    EXPECT_EQ(write(second), (std::vector<uint64_t>{3, 2, 2}));
    EXPECT_EQ(rowid_of("near_duplicate", 1), a_row);
    // What a write into an empty table gives.
    const auto got = table();
    db.exec("DELETE FROM issues");
    write(second);
    EXPECT_EQ(got, table());
    EXPECT_EQ(got.size(), 5u);
    // Unchanged: nothing written.
    EXPECT_EQ(write(second), (std::vector<uint64_t>{5, 0, 0}));
}
