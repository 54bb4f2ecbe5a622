// vislint eval's scoring rules (graph/evaluate.h); the end-to-end check on real images is in
// tests/python/test_eval.py.
#include <gtest/gtest.h>

#include "graph/evaluate.h"

namespace vislint::graph {
namespace {

TEST(Evaluate, SingleImageTypesCompareAsSetsOfImages) {
    // outlier rows name their nearest neighbour in `other`: it takes no part.
    const std::vector<Finding> p = {{"dark", "a", ""}, {"dark", "b", ""}, {"outlier", "x", "a"}};
    const std::vector<Finding> t = {{"dark", "b", ""}, {"dark", "c", ""}, {"dark", "c", ""}, {"outlier", "x", ""}};
    const auto s = score_findings(p, t);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s.at("dark").predicted, 2u);
    EXPECT_EQ(s.at("dark").truth, 2u); // c twice is one image
    EXPECT_EQ(s.at("dark").matched, 1u);
    EXPECT_DOUBLE_EQ(s.at("dark").precision, 0.5);
    EXPECT_DOUBLE_EQ(s.at("dark").recall, 0.5);
    EXPECT_DOUBLE_EQ(s.at("dark").f1, 0.5);
    EXPECT_DOUBLE_EQ(s.at("outlier").f1, 1.0);
}

TEST(Evaluate, LeaksAreUnorderedPairs) {
    const auto s = score_findings({{"leak", "a", "b"}, {"leak", "a", "c"}}, {{"leak", "b", "a"}});
    EXPECT_EQ(s.at("leak").matched, 1u);
    EXPECT_DOUBLE_EQ(s.at("leak").precision, 0.5);
    EXPECT_DOUBLE_EQ(s.at("leak").recall, 1.0);
}

TEST(Evaluate, DuplicatesAreClosedIntoGroupsAndComparedAsPairs) {
    // Predicted: a=b exactly, b~c, d~e -> groups {a,b,c} (3 pairs) and {d,e} (1 pair).
    const std::vector<Finding> p = {{"exact_duplicate", "a", "b"}, {"near_duplicate", "c", "b"},
                                    {"near_duplicate", "d", "e"}};
    // Truth: a~b, c~f, d~e, e~g (as near pairs) -> {a,b}, {c,f}, {d,e,g}: 1 + 1 + 3 = 5 pairs.
    const std::vector<Finding> t = {{"near_duplicate", "a", "b"}, {"near_duplicate", "f", "c"},
                                    {"near_duplicate", "d", "e"}, {"near_duplicate", "g", "e"}};
    const auto s = score_findings(p, t);
    EXPECT_EQ(s.count("near_duplicate"), 0u); // reported together, as "duplicate"
    const TypeScore& d = s.at("duplicate");
    EXPECT_EQ(d.predicted, 4u);
    EXPECT_EQ(d.truth, 5u);
    EXPECT_EQ(d.matched, 2u); // (a,b) and (d,e)
    EXPECT_DOUBLE_EQ(d.precision, 0.5);
    EXPECT_DOUBLE_EQ(d.recall, 0.4);
    // Exact alone: one predicted pair, none true.
    const TypeScore& e = s.at("exact_duplicate");
    EXPECT_EQ(e.predicted, 1u);
    EXPECT_EQ(e.truth, 0u);
    EXPECT_DOUBLE_EQ(e.precision, 0.0);
    EXPECT_DOUBLE_EQ(e.f1, 0.0);
}

TEST(Evaluate, AChainedPredictedGroupCostsPrecision) {
    // A chain a~b~c~d~e taken as one group claims 10 pairs; the truth has two groups of copies.
    const std::vector<Finding> p = {{"near_duplicate", "a", "b"}, {"near_duplicate", "b", "c"},
                                    {"near_duplicate", "c", "d"}, {"near_duplicate", "d", "e"}};
    const std::vector<Finding> t = {{"near_duplicate", "a", "b"}, {"near_duplicate", "c", "d"},
                                    {"near_duplicate", "d", "e"}};
    const TypeScore d = score_findings(p, t).at("duplicate");
    EXPECT_EQ(d.predicted, 10u);
    EXPECT_EQ(d.truth, 4u);
    EXPECT_EQ(d.matched, 4u);
    EXPECT_DOUBLE_EQ(d.recall, 1.0);
    EXPECT_DOUBLE_EQ(d.precision, 0.4);
}

TEST(Evaluate, NothingPredictedScoresZeroNotNaN) {
    const auto s = score_findings({}, {{"blurry", "a", ""}});
    EXPECT_EQ(s.at("blurry").predicted, 0u);
    EXPECT_DOUBLE_EQ(s.at("blurry").precision, 0.0);
    EXPECT_DOUBLE_EQ(s.at("blurry").recall, 0.0);
    EXPECT_DOUBLE_EQ(s.at("blurry").f1, 0.0);
}

} // namespace
} // namespace vislint::graph
