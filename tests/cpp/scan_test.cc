#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "io/discover.h"
#include "store/db.h"
#include "store/overview.h"
#include "test_util.h"
#include "vislint/results.h"
#include "vislint/scan.h"

namespace fs = std::filesystem;

namespace vislint {
namespace {

std::vector<IssueRow> of_type(const std::vector<IssueRow>& rows, const std::string& type) {
    std::vector<IssueRow> out;
    for (const auto& r : rows)
        if (r.type == type) out.push_back(r);
    return out;
}

class ScanTest : public ::testing::Test {
protected:
    void SetUp() override {
        root_ = testing::temp_dir("scan");
        data_ = root_ + "/data";
        fs::create_directories(data_ + "/sub");
        cv::Mat lizard = testing::load_bgr(testing::kLizardPng);
        cv::Mat tux = testing::load_bgr(testing::kTuxPng);
        testing::write_file(data_ + "/lizard.png", testing::read_file(testing::kLizardPng));
        fs::copy_file(data_ + "/lizard.png", data_ + "/sub/lizard_copy.png");
        testing::write_file(data_ + "/tux.jpg", testing::encode(tux, ".jpg"));
        cv::Mat small;
        cv::resize(tux, small, cv::Size(), 0.5, 0.5, cv::INTER_AREA);
        testing::write_file(data_ + "/sub/tux_small.jpg", testing::encode(small, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 40}));
        testing::write_file(data_ + "/empty.jpg", {});
        std::ofstream(data_ + "/notes.txt") << "not an image";
        opt_.inputs = {data_};
        opt_.work_dir = root_ + "/work";
        opt_.threads = 2;
        opt_.model.model = "none";
    }
    void TearDown() override { fs::remove_all(root_); }

    std::string root_, data_;
    ScanOptions opt_;
};

TEST_F(ScanTest, FindsCopiesBrokenFilesAndResumes) {
    ScanSummary s = scan(opt_, nullptr);
    EXPECT_EQ(s.images, 5u);
    EXPECT_EQ(s.analysed, 5u);
    EXPECT_EQ(s.skipped_files, 1u);
    auto rows = read_issues(opt_.work_dir);
    auto exact = of_type(rows, "exact_duplicate");
    ASSERT_EQ(exact.size(), 1u);
    EXPECT_EQ(exact[0].path, data_ + "/sub/lizard_copy.png");
    EXPECT_EQ(exact[0].other_path, data_ + "/lizard.png");
    auto near = of_type(rows, "near_duplicate");
    ASSERT_EQ(near.size(), 1u);
    EXPECT_EQ(near[0].path, data_ + "/sub/tux_small.jpg");
    auto broken = of_type(rows, "broken");
    ASSERT_EQ(broken.size(), 1u);
    EXPECT_EQ(broken[0].detail, "empty: zero-byte file");
    EXPECT_TRUE(fs::exists(opt_.work_dir + "/run.json"));

    ScanSummary again = scan(opt_, nullptr);
    EXPECT_EQ(again.analysed, 0u);
    EXPECT_EQ(again.reused, 5u);
    EXPECT_EQ(read_issues(opt_.work_dir).size(), rows.size());
}

// The checksum a scan stores (version 2, hashed in parts on parallel read connections) is the
// same on any number of threads, catches a changed value inside a row, and a work dir that holds
// the checksum of an earlier version (one serial hash) still opens.
TEST_F(ScanTest, StoredChecksumVerifiesInEitherVersionAndCatchesAChangedRow) {
    scan(opt_, nullptr);
    const size_t rows = read_issues(opt_.work_dir).size();
    ASSERT_GE(rows, 3u);
    const std::string db_path = opt_.work_dir + "/vislint.db";
    std::string v1, stored;
    {
        store::Db db(db_path, false);
        stored = db.meta("checksum");
        EXPECT_EQ(stored.rfind("2:", 0), 0u) << stored;
        EXPECT_EQ(store::committed_checksum(db_path, 1), stored);
        EXPECT_EQ(store::committed_checksum(db_path, 4), stored);
        EXPECT_TRUE(store::checksum_matches(db, stored, 2));
        v1 = store::content_checksum(db);
        EXPECT_TRUE(store::checksum_matches(db, v1, 2));
        db.set_meta("checksum", v1); // as an earlier version stored it
    }
    fs::remove(opt_.work_dir + "/vislint.verified"); // verified again by the next reader
    EXPECT_EQ(read_issues(opt_.work_dir).size(), rows);
    {
        store::Db db(db_path, false);
        db.exec("UPDATE images SET blur = blur + 1 WHERE id = (SELECT max(id) FROM images)");
        EXPECT_FALSE(store::checksum_matches(db, v1, 2));
        EXPECT_FALSE(store::checksum_matches(db, stored, 2));
    }
    fs::remove(opt_.work_dir + "/vislint.verified");
    try {
        read_issues(opt_.work_dir);
        FAIL() << "a changed row was read";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
    }
}

// The overview the derivation gathers on its passes (meta `overview`) is what the SQL fallback
// computes from the rows, after a first scan and after a re-scan that added and removed files.
TEST_F(ScanTest, StoredOverviewEqualsTheOneComputedFromTheRows) {
    auto check = [&] {
        store::Db db(opt_.work_dir + "/vislint.db", true);
        ASSERT_FALSE(db.meta("overview").empty());
        const nlohmann::json stored = store::read_overview(db), computed = store::compute_overview(db);
        EXPECT_EQ(stored.dump(), computed.dump());
        EXPECT_GT(stored["images"].get<int64_t>(), 0);
        EXPECT_FALSE(stored["histograms"]["width"]["counts"].empty());
    };
    scan(opt_, nullptr);
    check();
    fs::copy_file(data_ + "/tux.jpg", data_ + "/tux_again.jpg");
    fs::remove(data_ + "/sub/tux_small.jpg");
    scan(opt_, nullptr);
    check();
}

TEST_F(ScanTest, OneFileHoweverSpelledAndResumeAcrossSpellings) {
    // Relative spellings: from the test's own working directory to the data folder.
    const std::string rel = fs::relative(data_, fs::current_path()).string();
    std::ofstream(root_ + "/list.txt") << "data/tux.jpg\n./data/sub/../tux.jpg\n" << data_ << "//tux.jpg\n";
    io::Discovery d = io::discover({rel + "/sub/../tux.jpg", root_ + "/list.txt", "./" + rel + "/tux.jpg"});
    ASSERT_EQ(d.files.size(), 1u);
    EXPECT_EQ(d.files[0], data_ + "/tux.jpg");

    opt_.inputs = {"./" + rel + "/sub/../"};
    ScanSummary s = scan(opt_, nullptr);
    EXPECT_EQ(s.images, 5u);
    for (const auto& r : read_issues(opt_.work_dir)) EXPECT_EQ(r.path.rfind(data_ + "/", 0), 0u) << r.path;
    opt_.inputs = {data_ + "/./"};
    ScanSummary again = scan(opt_, nullptr);
    EXPECT_EQ(again.analysed, 0u);
    EXPECT_EQ(again.reused, 5u);
    EXPECT_EQ(again.removed, 0u);
}

// A folder inside another folder input, or given twice, yields each file once; folders side by
// side yield all their files. Each file comes with the size and mtime its folder walk read.
TEST_F(ScanTest, NestedOrRepeatedFoldersYieldEachFileOnceWithItsStat) {
    fs::create_directories(root_ + "/other");
    fs::copy_file(data_ + "/tux.jpg", root_ + "/other/tux.jpg");
    const size_t in_data = io::discover({data_}).files.size();
    ASSERT_EQ(in_data, 5u);
    for (const auto& inputs : std::vector<std::vector<std::string>>{
             {data_, data_ + "/sub"}, {data_ + "/sub", data_}, {data_, data_ + "/./"}, {data_ + "/sub/..", data_}}) {
        io::Discovery d = io::discover(inputs);
        EXPECT_EQ(d.files.size(), in_data) << inputs[0] << " " << inputs[1];
    }
    io::Discovery d = io::discover({data_, root_ + "/other"});
    ASSERT_EQ(d.files.size(), in_data + 1);
    ASSERT_EQ(d.stat.size(), d.files.size());
    for (size_t i = 0; i < d.files.size(); ++i) {
        ASSERT_TRUE(d.stat[i].known) << d.files[i];
        EXPECT_EQ(d.stat[i].size, int64_t(fs::file_size(d.files[i]))) << d.files[i];
        EXPECT_GT(d.stat[i].mtime_ns, 0) << d.files[i];
    }
    // A dangling symlink is found (it becomes a broken row) with no size.
    fs::create_symlink(root_ + "/nowhere.png", root_ + "/other/gone.png");
    d = io::discover({root_ + "/other"});
    ASSERT_EQ(d.files.size(), 2u);
    EXPECT_EQ(d.files[0], root_ + "/other/gone.png");
    EXPECT_EQ(d.stat[0].size, -1);
}

// Walking the sub-folders of a folder on several threads gives the one-thread walk exactly:
// same files in the same order, stats, skipped files and warnings, also when a symlink makes a
// folder reachable twice (the walk then falls back to one thread).
TEST_F(ScanTest, ParallelWalkEqualsTheSerialWalk) {
    const std::string tree = root_ + "/tree";
    for (const char* d : {"a", "b/deep/deeper", "c", "e", "m/n"}) fs::create_directories(tree + "/" + d);
    const std::vector<std::string> files = {"0.jpg", "a/1.png", "b/2.jpg", "b/deep/3.jpg", "b/deep/deeper/4.jpg",
                                            "bb.jpg", "c/5.jpg", "d.jpg", "e/6.png", "m/n/7.jpg", "z.jpg"};
    for (const auto& f : files) fs::copy_file(data_ + "/tux.jpg", tree + "/" + f);
    for (const char* f : {"a/notes.txt", "c/readme.md", "top.csv"}) std::ofstream(tree + "/" + f) << "x";
    auto same = [](const io::Discovery& x, const io::Discovery& y, const std::string& what) {
        ASSERT_EQ(x.files, y.files) << what;
        ASSERT_EQ(x.root_length, y.root_length) << what;
        ASSERT_EQ(x.stat.size(), y.stat.size()) << what;
        for (size_t i = 0; i < x.stat.size(); ++i) {
            EXPECT_EQ(x.stat[i].known, y.stat[i].known) << x.files[i];
            EXPECT_EQ(x.stat[i].size, y.stat[i].size) << x.files[i];
            EXPECT_EQ(x.stat[i].mtime_ns, y.stat[i].mtime_ns) << x.files[i];
        }
        EXPECT_EQ(x.skipped_files, y.skipped_files) << what;
        EXPECT_EQ(x.skipped_examples, y.skipped_examples) << what;
        EXPECT_EQ(x.warnings, y.warnings) << what;
    };
    const io::Discovery serial = io::discover({tree}, "", 1);
    ASSERT_EQ(serial.files.size(), files.size());
    for (size_t i = 0; i < files.size(); ++i) EXPECT_EQ(serial.files[i], tree + "/" + files[i]);
    EXPECT_EQ(serial.skipped_files, 3u);
    for (int threads : {2, 3, 8}) same(io::discover({tree}, "", threads), serial, "plain tree");

    // A symlink into a sibling folder and a loop back to the root: one thread's rules decide
    // (the sibling is walked twice under two spellings only where the serial walk does so too).
    fs::create_directory_symlink(tree + "/a", tree + "/m/link_to_a");
    fs::create_directory_symlink(tree, tree + "/e/loop");
    const io::Discovery serial_links = io::discover({tree}, "", 1);
    EXPECT_FALSE(serial_links.warnings.empty()); // the loop is reported
    for (int threads : {2, 8}) same(io::discover({tree}, "", threads), serial_links, "with symlinks");
}

// The rows decoded on several read connections reach the caller as the serial read gives them:
// every row once, in id order, also across batches and the gap a removed image leaves.
TEST_F(ScanTest, ParallelRowReadEqualsTheSerialRead) {
    scan(opt_, nullptr);
    fs::remove(data_ + "/sub/tux_small.jpg");
    fs::copy_file(data_ + "/tux.jpg", data_ + "/tux_again.jpg");
    scan(opt_, nullptr);
    const std::string path = opt_.work_dir + "/vislint.db";
    auto key = [](const store::ImageRecord& r) {
        return std::to_string(r.id) + " " + r.path + " " + r.status.to_string() + " " + std::to_string(r.phash) + " " +
               std::to_string(r.stats.brightness) + " " + std::to_string(r.width) + " " + r.file_hash.hex() + " " +
               std::to_string(r.derived) + std::to_string(r.has_variants);
    };
    std::vector<std::string> serial;
    {
        store::Db db(path, true);
        store::for_each_image(db, [&](store::ImageRecord&& r) { serial.push_back(key(r)); });
    }
    ASSERT_EQ(serial.size(), 5u);
    for (int threads : {1, 2, 3})
        for (int64_t batch : {1, 2, 4096}) {
            std::vector<std::string> got;
            store::for_each_image(path, threads, [&](store::ImageRecord&& r) { got.push_back(key(r)); }, batch);
            EXPECT_EQ(got, serial) << threads << " threads, batches of " << batch << " ids";
        }
    // An exception from the caller's function stops the readers and reaches the caller.
    EXPECT_THROW(store::for_each_image(path, 2, [](store::ImageRecord&&) { throw std::runtime_error("stop"); }, 1),
                 std::runtime_error);
}

TEST_F(ScanTest, WorkDirInsideInputIsRefused) {
    opt_.work_dir = data_ + "/results";
    EXPECT_THROW(scan(opt_, nullptr), Error);
    EXPECT_FALSE(fs::exists(data_ + "/results"));
}

TEST_F(ScanTest, NonFiniteAndOutOfRangeOptionsNameTheOption) {
    auto message = [&](const std::function<void(ScanOptions&)>& set) {
        ScanOptions o = opt_;
        set(o);
        try {
            validate(o);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    const double nan = std::nan(""), inf = HUGE_VAL;
    EXPECT_EQ(message([&](ScanOptions& o) { o.thresholds.outlier_z = inf; }), "--outlier-z must be a finite number (got inf)");
    EXPECT_EQ(message([&](ScanOptions& o) { o.thresholds.blurry = nan; }), "--blurry-threshold must be a finite number (got nan)");
    EXPECT_EQ(message([&](ScanOptions& o) { o.thresholds.odd_size_ratio = -inf; }), "--odd-size-ratio must be a finite number (got -inf)");
    EXPECT_EQ(message([&](ScanOptions& o) { o.labels.box_margin = nan; }), "--box-margin must be a finite number (got nan)");
    EXPECT_EQ(message([&](ScanOptions& o) { o.model.mean = {1, nan, 3}; }), "--model-mean values must be finite numbers (got nan)");
    EXPECT_EQ(message([&](ScanOptions& o) { o.model.std = {0}; }), "--model-std values must be positive (got 0)");
    EXPECT_EQ(message([&](ScanOptions& o) { o.model.std = {1, 2}; }), "--model-std takes 1 or 3 numbers (R,G,B), got 2");
    EXPECT_EQ(message([&](ScanOptions& o) { o.max_pixels = INT64_MAX; }),
              "--max-pixels must be a whole number of pixels between 1 and 1000000000000");
    EXPECT_EQ(message([&](ScanOptions& o) { o.max_pixels = kMaxPixelsLimit; }), "(no error)");
    EXPECT_EQ(message([](ScanOptions&) {}), "(no error)");
}

TEST_F(ScanTest, BadOptionsNameTheOption) {
    opt_.thresholds.dark = 300;
    try {
        scan(opt_, nullptr);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--dark-threshold"), std::string::npos);
    }
    opt_.thresholds.dark = 50;
    opt_.inputs = {root_ + "/missing"};
    EXPECT_THROW(scan(opt_, nullptr), Error);
}

TEST_F(ScanTest, NonUtf8NamesAreKeptAsBytes) {
    // Latin-1 names, as old archives and Windows copies have them: not UTF-8.
    const std::string dir = data_ + "/caf\xe9s";
    fs::create_directories(dir);
    fs::copy_file(data_ + "/lizard.png", dir + "/l\xe9zard.png");
    testing::Bytes png = testing::read_file(testing::kTuxPng);
    png.resize(png.size() / 2);
    testing::write_file(dir + "/tux\xff.png", png);
    opt_.inputs = {dir, data_ + "/lizard.png"};
    ScanSummary s = scan(opt_, nullptr);
    EXPECT_EQ(s.images, 3u);
    auto rows = read_issues(opt_.work_dir);
    auto exact = of_type(rows, "exact_duplicate");
    ASSERT_EQ(exact.size(), 1u);
    EXPECT_EQ(exact[0].path, data_ + "/lizard.png");
    EXPECT_EQ(exact[0].other_path, dir + "/l\xe9zard.png"); // the exact bytes, as stored
    auto broken = of_type(rows, "broken");
    ASSERT_EQ(broken.size(), 1u);
    EXPECT_EQ(broken[0].path, dir + "/tux\xff.png");
    EXPECT_EQ(broken[0].detail.rfind("truncated", 0), 0u) << broken[0].detail;
    Table stats = read_stats(opt_.work_dir);
    ASSERT_EQ(stats.types.size(), stats.columns.size());
    ASSERT_EQ(stats.rows.size(), 3u);
    EXPECT_EQ(stats.rows[0][0], dir + "/l\xe9zard.png");
    // run.json names the inputs: valid JSON with the odd byte spelled \xe9 (a plain dump threw).
    std::ifstream in(opt_.work_dir + "/run.json");
    nlohmann::json run = nlohmann::json::parse(in);
    EXPECT_EQ(run["status"], "complete");
    EXPECT_EQ(run["options"]["inputs"][0], data_ + "/caf\\xe9s");
}

class CancelAfter : public Progress {
public:
    bool progress(const char* stage, uint64_t done, uint64_t) override {
        return std::string(stage) != "analyse" || done < 1;
    }
};

TEST_F(ScanTest, CancelKeepsWhatWasDone) {
    CancelAfter cancel;
    EXPECT_THROW(scan(opt_, &cancel), Cancelled);
    ScanSummary s = scan(opt_, nullptr);
    EXPECT_GE(s.reused, 1u);
    EXPECT_EQ(s.images, 5u);
}

} // namespace
} // namespace vislint
