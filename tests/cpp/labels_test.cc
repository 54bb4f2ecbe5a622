// Label sources: CSV, COCO, YOLO, splits from paths; and the leak rule.
#include <set>
#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "graph/labels.h"
#include "io/formats.h"
#include "io/labels.h"
#include "test_util.h"
#include "vislint/status.h"

namespace fs = std::filesystem;
using namespace vislint;
namespace vt = vislint::testing;

namespace {

void write_text(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
}

// A folder with two real images: a.png and sub/b.jpg.
std::string image_folder(const std::string& name) {
    std::string dir = vt::temp_dir(name);
    cv::Mat img = vt::load_bgr(vt::kTuxPng);
    vt::write_file(dir + "/a.png", vt::encode(img, ".png"));
    fs::create_directories(dir + "/sub");
    vt::write_file(dir + "/sub/b.jpg", vt::encode(img, ".jpg"));
    return dir;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST(LabelsCsv, ReadsQuotedFieldsBomCrlfAndCountsMissingFiles) {
    std::string dir = image_folder("labels_csv");
    write_text(dir + "/labels.csv", "\xEF\xBB\xBFsplit,Path,label\r\n"
                                    "train,a.png,\"cat, striped\"\r\n"
                                    "validation,sub/b.jpg,\"say \"\"dog\"\"\"\r\n"
                                    "test,missing.png,bird\r\n");
    io::Annotations a = io::read_labels_csv(dir + "/labels.csv");
    ASSERT_EQ(a.by_key.size(), 2u);
    const auto& cat = a.by_key.at(io::path_key(dir + "/a.png"));
    EXPECT_EQ(cat.label, "cat, striped");
    EXPECT_EQ(cat.split, "train");
    const auto& dog = a.by_key.at(io::path_key(dir + "/sub/b.jpg"));
    EXPECT_EQ(dog.label, "say \"dog\"");
    EXPECT_EQ(dog.split, "val"); // canonical name
    EXPECT_EQ(a.missing_files, 1u);
    EXPECT_NE(a.missing_examples.at(0).find("missing.png"), std::string::npos);
}

TEST(LabelsCsv, MalformedInputNamesFileAndLine) {
    std::string dir = image_folder("labels_csv_bad");
    write_text(dir + "/short.csv", "path,label\na.png,cat\nsub/b.jpg\n");
    EXPECT_NE(error_of([&] { io::read_labels_csv(dir + "/short.csv"); }).find("short.csv:3: expected 2 fields"),
              std::string::npos);
    write_text(dir + "/nohead.csv", "file_name,category\na.png,cat\n");
    EXPECT_NE(error_of([&] { io::read_labels_csv(dir + "/nohead.csv"); }).find("nohead.csv:1: the header must name"),
              std::string::npos);
    write_text(dir + "/quote.csv", "path,label\na.png,\"cat\n");
    EXPECT_NE(error_of([&] { io::read_labels_csv(dir + "/quote.csv"); }).find("quote.csv:2: quoted field"),
              std::string::npos);
    EXPECT_NE(error_of([&] { io::read_labels_csv(dir + "/absent.csv"); }).find("cannot read labels file"),
              std::string::npos);
}

TEST(Coco, EveryBoxOfEveryImageAndMajorityLabel) {
    std::string dir = image_folder("coco");
    write_text(dir + "/ann.json", R"({
      "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "sub/b.jpg"},
                 {"id": 3, "file_name": "gone.png"}],
      "categories": [{"id": 7, "name": "penguin"}, {"id": 9, "name": "fish"}],
      "annotations": [
        {"id": 10, "image_id": 1, "category_id": 7, "bbox": [1, 2, 30, 40]},
        {"id": 11, "image_id": 1, "category_id": 9, "bbox": [5, 5, 10, 10]},
        {"id": 12, "image_id": 1, "category_id": 9, "bbox": [20, 5, 10, 10]},
        {"id": 13, "image_id": 3, "category_id": 7, "bbox": [0, 0, 5, 5]}]})");
    io::Annotations a = io::read_coco(dir + "/ann.json", {});
    EXPECT_EQ(a.missing_files, 1u);
    const auto& img = a.by_key.at(io::path_key(dir + "/a.png"));
    ASSERT_EQ(img.boxes.size(), 3u);
    EXPECT_EQ(img.boxes[0].id, 10);
    EXPECT_EQ(img.boxes[0].label, "penguin");
    EXPECT_DOUBLE_EQ(img.boxes[0].w, 30);
    EXPECT_EQ(img.label, "fish"); // two boxes beat one
    const auto& b = a.by_key.at(io::path_key(dir + "/sub/b.jpg"));
    EXPECT_TRUE(b.has_boxes);
    EXPECT_TRUE(b.boxes.empty());
}

TEST(Coco, MalformedInputNamesTheField) {
    std::string dir = image_folder("coco_bad");
    auto err = [&](const std::string& json) {
        write_text(dir + "/bad.json", json);
        return error_of([&] { io::read_coco(dir + "/bad.json", {}); });
    };
    EXPECT_NE(err("{").find("bad.json: not valid JSON"), std::string::npos);
    EXPECT_NE(err(R"({"categories": []})").find("images is missing"), std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1}], "categories": []})").find("images[0].file_name is missing"),
              std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "x"}],
                     "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]})")
                  .find("annotations[0].bbox must be [x, y, width, height]"),
              std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "x"}],
                     "annotations": [{"image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4]}]})")
                  .find("annotations[0].image_id 5 is not in images"),
              std::string::npos);
}

TEST(Coco, BadNumbersAndIdsNameTheFieldAndTheValue) {
    std::string dir = image_folder("coco_numbers");
    auto err = [&](const std::string& images, const std::string& anns) {
        write_text(dir + "/instances.json", R"({"images": )" + images +
                                                R"(, "categories": [{"id": 1, "name": "x"}], "annotations": )" + anns + "}");
        return error_of([&] { io::read_coco(dir + "/instances.json", {}); });
    };
    const std::string img = R"([{"id": 1, "file_name": "a.png"}])";
    auto ann = [](const std::string& fields) { return R"([{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9]}, {)" + fields + "}]"; };
    EXPECT_EQ(err(img, ann(R"("image_id": 1, "category_id": 1, "bbox": [1, 2, 1e999, 4])")),
              dir + "/instances.json: annotations[1].bbox[2]: 1e999 is not a finite number (too large for a double)");
    EXPECT_NE(err(img, ann(R"("image_id": 1, "category_id": 1, "bbox": [-1E+400, 2, 3, 4])")).find("annotations[1].bbox[0]: -1E+400 is not a finite"),
              std::string::npos);
    EXPECT_NE(err(img, ann(R"("image_id": 1, "category_id": 1, "bbox": [1, "2", 3, 4])")).find("annotations[1].bbox[1] must be a number (found the string \"2\")"),
              std::string::npos);
    EXPECT_NE(err(img, ann(R"("image_id": 1, "category_id": 1, "bbox": [1, 2, 3])")).find("annotations[1].bbox must be [x, y, width, height] (found 3 values)"),
              std::string::npos);
    EXPECT_NE(err(img, ann(R"("image_id": 1, "category_id": 1, "bbox": [1, 2, 3, NaN])")).find("instances.json: not valid JSON: parse error at line 1"),
              std::string::npos);
    EXPECT_NE(err(img, ann(R"("id": 1e999, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4])")).find("annotations[1].id: 1e999 is not a finite number"),
              std::string::npos);
    EXPECT_NE(err(img, ann(R"("image_id": 1, "category_id": "1", "bbox": [1, 2, 3, 4])")).find("annotations[1].category_id must be an integer (found the string \"1\")"),
              std::string::npos);
    EXPECT_NE(err(img, ann(R"("id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4])")).find("annotations[1].id 5 is used twice (also by annotations[0])"),
              std::string::npos);
    EXPECT_NE(err(R"([{"id": -3, "file_name": "a.png"}])", "[]").find("images[0].id: -3 is negative"), std::string::npos);
    EXPECT_NE(err(R"([{"id": 18446744073709551615, "file_name": "a.png"}])", "[]").find("images[0].id: 18446744073709551615 is too large for an id"),
              std::string::npos);
    EXPECT_NE(err(R"([{"id": 1e30, "file_name": "a.png"}])", "[]").find("images[0].id must be a whole number"), std::string::npos);
    EXPECT_NE(err(R"([{"id": 99999999999999999999999, "file_name": "a.png"}])", "[]").find("images[0].id must be a whole number"),
              std::string::npos);
    EXPECT_NE(err(R"([{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "sub/b.jpg"}])", "[]").find("images[1].id 1 is used by two images"),
              std::string::npos);
    // The same file without the bad values reads.
    EXPECT_EQ(err(img, ann(R"("image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4])")), "(no error)");
}

TEST(Yolo, BadNumbersNameTheLineAndTheField) {
    std::string dir = vt::temp_dir("yolo_numbers");
    vt::write_file(dir + "/images/x.png", vt::encode(vt::load_bgr(vt::kLizardPng), ".png"));
    write_text(dir + "/classes.txt", "lizard\nrock\n");
    auto err = [&](const std::string& line) {
        write_text(dir + "/labels/x.txt", "0 0.5 0.5 0.2 0.2\n" + line + "\n");
        return error_of([&] { io::read_yolo(dir, {dir + "/images/x.png"}); });
    };
    const std::string where = dir + "/labels/x.txt:2: ";
    EXPECT_EQ(err("1 0.5 1e999 0.2 0.2"), where + "y_center '1e999' is not a finite number");
    EXPECT_EQ(err("1 nan 0.5 0.2 0.2"), where + "x_center 'nan' is not a finite number");
    EXPECT_EQ(err("1 0.5 0.5 inf 0.2"), where + "width 'inf' is not a finite number");
    EXPECT_EQ(err("1 0.5 0.5 0.2 0x1p-2"), where + "height '0x1p-2' is not a number");
    EXPECT_EQ(err("one 0.5 0.5 0.2 0.2"), where + "class 'one' is not a number");
    EXPECT_EQ(err("1 0.5 0.5 0.2 0.2"), "(no error)");
    fs::remove_all(dir);
}

TEST(LabelsCsv, PathsMatchHoweverTheyAreSpelled) {
    std::string dir = image_folder("labels_spelling");
    // Relative to the CSV with ./ and .., and absolute with a redundant component.
    write_text(dir + "/labels.csv", "path,label\n./sub/../a.png,cat\n" + dir + "/./sub//b.jpg,dog\n");
    io::Annotations a = io::read_labels_csv(dir + "/labels.csv");
    ASSERT_EQ(a.by_key.size(), 2u);
    EXPECT_EQ(a.by_key.at(dir + "/a.png").label, "cat");
    EXPECT_EQ(a.by_key.at(dir + "/sub/b.jpg").label, "dog");
    EXPECT_EQ(a.path_of.at(dir + "/a.png"), dir + "/a.png");
    EXPECT_EQ(a.path_of.at(dir + "/sub/b.jpg"), dir + "/sub/b.jpg");
    fs::remove_all(dir);
}

TEST(Yolo, LabelFilesBesideImagesFolderAndNames) {
    std::string dir = vt::temp_dir("yolo");
    cv::Mat img = vt::load_bgr(vt::kLizardPng);
    vt::write_file(dir + "/images/train/x.png", vt::encode(img, ".png"));
    vt::write_file(dir + "/images/train/y.png", vt::encode(img, ".png"));
    write_text(dir + "/labels/train/x.txt", "1 0.5 0.5 0.2 0.4\n0 0.25 0.25 0.5 0.5\n\n1 0.1 0.1 0.1 0.1\n");
    write_text(dir + "/data.yaml", "path: .\ntrain: images/train\nnames:\n  0: lizard\n  1: 'rock'\n");
    io::Annotations a = io::read_yolo(dir, {dir + "/images/train/x.png", dir + "/images/train/y.png"});
    const auto& x = a.by_key.at(io::path_key(dir + "/images/train/x.png"));
    ASSERT_EQ(x.boxes.size(), 3u);
    EXPECT_EQ(x.boxes[0].label, "rock");
    EXPECT_TRUE(x.boxes[0].normalised);
    EXPECT_DOUBLE_EQ(x.boxes[0].x, 0.4);
    EXPECT_DOUBLE_EQ(x.boxes[0].y, 0.3);
    EXPECT_EQ(x.boxes[2].id, 4); // line number
    EXPECT_EQ(x.label, "rock");
    EXPECT_TRUE(a.by_key.at(io::path_key(dir + "/images/train/y.png")).boxes.empty());

    write_text(dir + "/data.yaml", "names: [lizard, rock]\n");
    write_text(dir + "/labels/train/x.txt", "1 0.5 0.5 0.2\n");
    EXPECT_NE(error_of([&] { io::read_yolo(dir, {dir + "/images/train/x.png"}); }).find("x.txt:1: expected 'class"),
              std::string::npos);
    write_text(dir + "/labels/train/x.txt", "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n");
    EXPECT_NE(error_of([&] { io::read_yolo(dir, {dir + "/images/train/x.png"}); }).find("x.txt:2: class 2 is not one of the 2"),
              std::string::npos);
    fs::remove(dir + "/data.yaml");
    EXPECT_NE(error_of([&] { io::read_yolo(dir, {}); }).find("no data.yaml"), std::string::npos);
}

TEST(Splits, FromPathComponentsBelowTheRootOnly) {
    const std::string root = "/data/test/ds/";
    const uint32_t len = uint32_t(root.size());
    EXPECT_EQ(io::split_from_path(root + "train/cat/1.jpg", len), "train");
    EXPECT_EQ(io::split_from_path(root + "Validation/1.jpg", len), "val");
    EXPECT_EQ(io::split_from_path(root + "cat/1.jpg", len), ""); // "test" above the root is ignored
    EXPECT_EQ(io::split_from_path(root + "cat/test.jpg", len), ""); // a file name is not a split
    EXPECT_EQ(io::split_from_path("/x/train/1.jpg", 0), "");       // no root: no automatic split
    EXPECT_EQ(io::folder_label(root + "train/cat/1.jpg"), "cat");
    EXPECT_EQ(io::folder_label(root + "train/1.jpg"), "");
}

TEST(Leaks, CrossSplitPairsOnlyOneRowPerImageAndSplit) {
    graph::ExactResult exact;
    exact.groups.push_back({"exact", {0, 1, 2}, 0}); // 0 train, 1 train, 2 test
    graph::NearResult near;
    near.pairs.push_back({3, 4, 0.95, 0, "", 0.9}); // 3 train, 4 val: a leak
    near.pairs.push_back({5, 6, 0.97, 0, "", 0.9}); // both test: not a leak
    near.pairs.push_back({4, 7, 0.93, 0, "", 0.9}); // 7 has no split: not a leak
    std::vector<std::string> split = {"train", "train", "test", "train", "val", "test", "test", "", "train"};
    std::vector<graph::Leak> leaks = graph::find_leaks(exact, near, split);
    ASSERT_EQ(leaks.size(), 2u);
    // A stronger match on another rule's scale wins: pHash distance 1 (score 0.984, 0.9 of the
    // way from the hash rule's threshold 0.844 to 1) beats cosine 0.95 (half way from 0.90).
    near.pairs.push_back({8, 4, 1.0 - 1.0 / 64, 1, "", 1.0 - 10.0 / 64}); // 8 train, distance 1
    std::vector<graph::Leak> again = graph::find_leaks(exact, near, split);
    ASSERT_EQ(again.size(), 2u);
    EXPECT_EQ(again[1].a, 4);
    EXPECT_EQ(again[1].b, 8);
    EXPECT_EQ(leaks[0].a, 2); // the test image, once, against the first train member
    EXPECT_EQ(leaks[0].b, 0);
    EXPECT_NE(leaks[0].detail.find("test image duplicates a train image (exact copy)"), std::string::npos);
    EXPECT_EQ(leaks[1].a, 4);
    EXPECT_EQ(leaks[1].b, 3);
    EXPECT_DOUBLE_EQ(leaks[1].score, 0.95);
}

TEST(Formats, JpegDimensionsFromTheFrameHeader) {
    cv::Mat img = vt::load_bgr(vt::kTuxPng);
    vt::Bytes jpeg = vt::with_exif_orientation(vt::encode(img, ".jpg"), 6);
    io::Dimensions d = io::read_dimensions(io::Format::kJpeg, jpeg.data(), jpeg.size());
    ASSERT_TRUE(d.known);
    EXPECT_EQ(d.width, img.cols); // as stored: EXIF rotation is not applied here
    EXPECT_EQ(d.height, img.rows);
    EXPECT_FALSE(io::read_dimensions(io::Format::kJpeg, jpeg.data(), 20).known);
}

// The embedded items can be a subset of those the exact groups were found in: members outside
// it are left out, and never stand in for the item at position 0 (a near pair of that item with
// an exact copy of an item that has no embedding was once dropped as "inside one exact group").
TEST(NearGroups, ExactMembersOutsideTheEmbeddedSubsetAreLeftOut) {
    std::vector<graph::DupItem> sub(3);
    for (int i = 0; i < 3; ++i) {
        sub[size_t(i)].id = 10 + i;
        sub[size_t(i)].width = sub[size_t(i)].height = 100;
    }
    graph::ExactResult exact;
    exact.groups.push_back({"exact", {11, 20}, 11}); // 20 has no embedding
    exact.groups.push_back({"exact", {21, 22}, 21}); // neither is embedded
    std::vector<graph::IndexPair> pairs = {{0, 1, 0.97, "", 0.9}};
    graph::NearResult r = graph::group_near_pairs(sub, exact, pairs);
    ASSERT_EQ(r.pairs.size(), 1u);
    EXPECT_EQ(r.pairs[0].a, 10);
    EXPECT_EQ(r.pairs[0].b, 11);
    ASSERT_EQ(r.groups.size(), 1u);
    EXPECT_EQ(r.groups[0].members, (std::vector<int64_t>{10, 11}));
}

// Near-duplicate groups are stars: every member is paired with the keeper itself. A chain
// A~B~C of distinct A and C (no A~C pair) never puts C in A's group, nor A in C's.
TEST(NearGroups, AChainIsNotOneGroup) {
    auto make = [](int count) {
        std::vector<graph::DupItem> items;
        items.resize(size_t(count));
        for (int i = 0; i < count; ++i) {
            items[size_t(i)].id = 10 + i;
            items[size_t(i)].width = items[size_t(i)].height = 400;
            items[size_t(i)].file_hash.low = items[size_t(i)].pixel_hash.low = uint64_t(i + 1);
            items[size_t(i)].file_size = 1000;
        }
        return items;
    };
    // Every non-keeper member is paired with its keeper; no item is in two groups.
    auto check_stars = [](const graph::NearResult& r) {
        std::set<std::pair<int64_t, int64_t>> paired;
        for (const auto& p : r.pairs) paired.insert({p.a, p.b});
        std::set<int64_t> seen;
        for (const auto& g : r.groups) {
            EXPECT_TRUE(std::is_sorted(g.members.begin(), g.members.end()));
            for (int64_t m : g.members) {
                EXPECT_TRUE(seen.insert(m).second) << m << " is in two groups";
                if (m != g.keeper)
                    EXPECT_TRUE(paired.count({std::min(m, g.keeper), std::max(m, g.keeper)}))
                        << m << " is grouped under " << g.keeper << " without being its near duplicate";
            }
        }
    };
    std::vector<graph::DupItem> items = make(3);
    const std::vector<graph::IndexPair> chain = {{0, 1, 0.95, "", 0.9}, {1, 2, 0.95, "", 0.9}};
    items[0].width = items[0].height = 800; // A is the keeper: B joins it, C is left out
    graph::NearResult r = graph::group_near_pairs(items, graph::find_exact(items), chain);
    EXPECT_EQ(r.pairs.size(), 2u); // pairs stay pairs
    ASSERT_EQ(r.groups.size(), 1u);
    EXPECT_EQ(r.groups[0].keeper, 10);
    EXPECT_EQ(r.groups[0].members, (std::vector<int64_t>{10, 11}));
    check_stars(r);
    items[0].width = items[0].height = 400; // B is the largest: A and C are both its near copies
    items[1].width = items[1].height = 800;
    r = graph::group_near_pairs(items, graph::find_exact(items), chain);
    ASSERT_EQ(r.groups.size(), 1u);
    EXPECT_EQ(r.groups[0].keeper, 11);
    EXPECT_EQ(r.groups[0].members, (std::vector<int64_t>{10, 11, 12}));
    check_stars(r);
    // Seven look-alikes in a chain, as road signs of one clip-art set: no group holds two items
    // further apart than one link, so no group spans more than three of them.
    items = make(7);
    std::vector<graph::IndexPair> seven;
    for (size_t i = 0; i + 1 < 7; ++i) seven.push_back({i, i + 1, 0.93 + 0.005 * double(i), "", 0.9});
    r = graph::group_near_pairs(items, graph::find_exact(items), seven);
    EXPECT_EQ(r.pairs.size(), 6u);
    ASSERT_GE(r.groups.size(), 2u);
    for (const auto& g : r.groups) EXPECT_LE(g.members.size(), 3u);
    check_stars(r);
    // An exact copy of a member is grouped with it (one unit): C' = C joins B's group with C.
    items = make(4);
    items[3].file_hash = items[2].file_hash;
    items[3].pixel_hash = items[2].pixel_hash;
    items[1].width = items[1].height = 800;
    r = graph::group_near_pairs(items, graph::find_exact(items), chain);
    ASSERT_EQ(r.groups.size(), 1u);
    EXPECT_EQ(r.groups[0].keeper, 11);
    EXPECT_EQ(r.groups[0].members, (std::vector<int64_t>{10, 11, 12, 13}));
}

TEST(Keeper, MostCentralMemberOfEqualResolutionWins) {
    // An original (0) and two copies: a noisy one with a bigger file (1) and a flipped one (2).
    // The copies are each close to the original and further from each other.
    std::vector<graph::DupItem> items(3);
    for (int i = 0; i < 3; ++i) {
        items[size_t(i)].id = 10 + i;
        items[size_t(i)].width = items[size_t(i)].height = 400;
        items[size_t(i)].file_hash.low = uint64_t(i + 1);
        items[size_t(i)].pixel_hash.low = uint64_t(i + 1);
    }
    items[0].file_size = 1000;
    items[1].file_size = 5000;
    items[2].file_size = 1200;
    std::vector<graph::IndexPair> pairs = {{0, 1, 0.98, "", 0.9}, {0, 2, 0.95, "", 0.9}, {1, 2, 0.91, "", 0.9}};
    graph::NearResult r = graph::group_near_pairs(items, graph::find_exact(items), pairs);
    ASSERT_EQ(r.groups.size(), 1u);
    EXPECT_EQ(r.groups[0].keeper, 10);
    // A larger resolution still wins over centrality.
    items[2].width = 800;
    EXPECT_EQ(graph::group_near_pairs(items, graph::find_exact(items), pairs).groups[0].keeper, 12);
}
