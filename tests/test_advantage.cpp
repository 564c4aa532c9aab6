// test_advantage.cpp: GRPO advantages for each scaling against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "host/advantage.h"
#include "host/error.h"

using namespace rusca;

namespace {

// Two groups of G = 4: one with a single success, one where every rollout scored the same.
const std::vector<double> kRewards = {1, 0, 0, 0, 0.5, 0.5, 0.5, 0.5};

void expect_all_near(const std::vector<float>& got, const std::vector<double>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); i++) EXPECT_NEAR(got[i], want[i], 1e-5) << "index " << i;
}

}  // namespace

TEST(Advantage, GroupStdUsesUnbiasedGroupStd) {
    // Group 1: mean 0.25; squared deviations 0.5625 + 3 * 0.0625 = 0.75; unbiased var 0.75 / 3 = 0.25.
    const double s = 0.5 + 1e-6;
    expect_all_near(group_advantages(kRewards, 4, AdvNorm::GroupStd),
                    {0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s, 0, 0, 0, 0});
}

TEST(Advantage, NoneOnlyCentres) {
    expect_all_near(group_advantages(kRewards, 4, AdvNorm::None), {0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0});
}

TEST(Advantage, BatchStdDividesByStdOfWholeBatch) {
    // Batch mean 3/8; squared deviations 0.390625 + 3 * 0.140625 + 4 * 0.015625 = 0.875; / 7 = 0.125.
    const double s = std::sqrt(0.125) + 1e-6;
    expect_all_near(group_advantages(kRewards, 4, AdvNorm::BatchStd),
                    {0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s, 0, 0, 0, 0});
}

TEST(Advantage, PairGroupIsPlusMinusOneOverSqrtTwo) {
    // G = 2, rewards 1 and 0: unbiased std = sqrt(0.5), so A = +-0.5 / sqrt(0.5) = +-0.7071.
    expect_all_near(group_advantages({1.0, 0.0}, 2, AdvNorm::GroupStd, 0.0), {std::sqrt(0.5), -std::sqrt(0.5)});
}

TEST(Advantage, SingleRolloutGroupsGetZero) {
    for (AdvNorm n : {AdvNorm::GroupStd, AdvNorm::None, AdvNorm::BatchStd})
        expect_all_near(group_advantages({0.3, -1.0, 0.9}, 1, n), {0, 0, 0});
}

TEST(Advantage, RejectsRaggedGroupsAndUnknownNames) {
    EXPECT_THROW(group_advantages({1, 2, 3}, 2, AdvNorm::GroupStd), Error);
    EXPECT_THROW(group_advantages({1, 2}, 0, AdvNorm::GroupStd), Error);
    for (const char* name : {"group", "none", "batch"}) EXPECT_STREQ(adv_norm_name(parse_adv_norm(name)), name);
    try {
        parse_adv_norm("zscore");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("\"zscore\""), std::string::npos) << e.what();
    }
}
