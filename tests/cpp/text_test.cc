#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "common/string_index.h"
#include "common/text.h"
#include "store/db.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace vislint {
namespace {

// The inverse of printable() for text without a literal backslash: \xNN back to the byte.
std::string unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x') {
            out += char(std::stoi(s.substr(i + 2, 2), nullptr, 16));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

TEST(Text, PrintableEscapesOnlyInvalidBytes) {
    EXPECT_EQ(printable("caf\xe9.png"), "caf\\xe9.png");
    const std::string utf8 = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \x7f\t";
    EXPECT_EQ(printable(utf8), utf8);
    EXPECT_TRUE(is_utf8(utf8));
    EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");                      // overlong '/'
    EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");             // UTF-16 surrogate
    EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");    // above U+10FFFF
    EXPECT_EQ(printable("a\xe6\x97"), "a\\xe6\\x97");                    // cut-off sequence
    EXPECT_EQ(printable("\xe6\x97" "A\xe6\x97\xa5"), "\\xe6\\x97" "A\xe6\x97\xa5");
    EXPECT_EQ(printable(std::string("a\0b", 3)), std::string("a\0b", 3)); // NUL is valid UTF-8
    EXPECT_FALSE(is_utf8("\xff"));
}

TEST(Text, PrintableOfAnyBytesIsUtf8AndReversible) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255), len(0, 40);
    for (int n = 0; n < 2000; ++n) {
        std::string s;
        for (int i = len(rng); i > 0; --i) {
            char c = char(byte(rng));
            s += c == '\\' ? 'x' : c;
        }
        const std::string p = printable(s);
        ASSERT_TRUE(is_utf8(p));
        ASSERT_NO_THROW((void)nlohmann::json(p).dump()); // nlohmann's own UTF-8 check agrees
        ASSERT_EQ(unescape(p), s);
    }
}

TEST(Text, SanitizeMessageEscapesControlsAndCaps) {
    EXPECT_EQ(sanitize_message("bad\nline\x1b[31m\xe9"), "bad\\x0aline\\x1b[31m\\xe9");
    EXPECT_EQ(sanitize_message("libpng: CRC error"), "libpng: CRC error");
    std::string long_text;
    for (int i = 0; i < 200; ++i) long_text += "\xe6\x97\xa5\x01"; // 3-byte char, then a control
    const std::string m = sanitize_message(long_text);
    EXPECT_LE(m.size(), kMaxMessageBytes);
    EXPECT_GE(m.size(), kMaxMessageBytes - 7); // cut close to the cap, at a boundary
    EXPECT_EQ(m.substr(m.size() - 3), "...");
    EXPECT_TRUE(is_utf8(m));
    const std::string body = m.substr(0, m.size() - 3);
    EXPECT_TRUE(body.size() >= 4 && (body.substr(body.size() - 4) == "\\x01" ||
                                     body.substr(body.size() - 3) == "\xe6\x97\xa5"));
    EXPECT_EQ(sanitize_message(std::string(kMaxMessageBytes, 'a')), std::string(kMaxMessageBytes, 'a'));
}

TEST(Text, DumpPrintableEscapesKeysAndValues) {
    nlohmann::json j = {{"path", "d\xff/caf\xe9.png"},
                        {"labels", {{"chat\xe9", 2}, {"dog", 1}}},
                        {"list", {"ok", "\x80"}},
                        {"n", 3}};
    EXPECT_THROW((void)j.dump(), nlohmann::json::type_error); // what the helper exists for
    nlohmann::json back = nlohmann::json::parse(dump_printable(j, 2));
    EXPECT_EQ(back["path"], "d\\xff/caf\\xe9.png");
    EXPECT_EQ(back["labels"]["chat\\xe9"], 2);
    EXPECT_EQ(back["labels"]["dog"], 1);
    EXPECT_EQ(back["list"], nlohmann::json({"ok", "\\x80"}));
    EXPECT_EQ(back["n"], 3);
}

TEST(Text, StoredStatusMessageIsSanitised) {
    const std::string dir = testing::temp_dir("text_db");
    {
        store::Db db(dir + "/t.db", false);
        store::Stmt up(db.handle(), store::image_upsert_sql());
        store::ImageRecord r;
        r.id = 0;
        r.path = dir + "/caf\xe9.png";
        r.file_size = 10;
        r.status = ImageStatus::make(StatusCode::kCorrupt, "decoder said \xff\xfe\n" + std::string(1000, 'x'));
        store::bind_image(up, r);
        up.run();
        store::Stmt s(db.handle(), "SELECT path, error FROM images");
        ASSERT_TRUE(s.step());
        EXPECT_EQ(s.text(0), r.path); // names are stored as they are
        const std::string e = s.text(1);
        EXPECT_EQ(e.rfind("corrupt: decoder said \\xff\\xfe\\x0axxx", 0), 0u) << e;
        EXPECT_EQ(e.size(), kMaxMessageBytes);
        EXPECT_EQ(e.substr(e.size() - 3), "...");
        std::vector<store::ImageRecord> read = store::read_images(db);
        ASSERT_EQ(read.size(), 1u);
        EXPECT_EQ(read[0].status.to_string(), e); // the broken row's detail is this text
    }
    fs::remove_all(dir);
}

// StringIndex against std::unordered_map on 200 k strings that share long prefixes, with
// repeats, empty strings and embedded NUL bytes, through several table growths.
TEST(StringIndex, NumbersEachDistinctStringOnceInInsertionOrder) {
    std::mt19937_64 rng(7);
    StringIndex index; // grows from the default size
    std::unordered_map<std::string, uint32_t> expected;
    std::vector<std::string> order;
    for (int i = 0; i < 200000; ++i) {
        std::string s = "/data/set/d" + std::to_string(rng() % 500) + "/img_" + std::to_string(rng() % 150000);
        if (i % 1000 == 0) s = "";
        if (i % 777 == 0) s += std::string(1, '\0') + "x";
        auto [it, added] = expected.emplace(s, uint32_t(order.size()));
        if (added) order.push_back(s);
        auto [n, inserted] = index.insert(s);
        ASSERT_EQ(inserted, added) << s;
        ASSERT_EQ(n, it->second) << s;
    }
    ASSERT_EQ(index.size(), order.size());
    ASSERT_GT(order.size(), 100000u);
    for (uint32_t i = 0; i < order.size(); ++i) {
        ASSERT_EQ(index.at(i), order[i]);
        ASSERT_EQ(index.find(order[i]), i);
    }
    EXPECT_EQ(index.find("/data/set/d1/img_150000"), StringIndex::kNone); // never generated
    EXPECT_EQ(index.find(order[5] + "/"), StringIndex::kNone);
}

} // namespace
} // namespace vislint
