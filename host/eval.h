// eval.h: the held-out rubric score: one completion per prompt WITHOUT scaffold, judged, rewarded;
// the score is the mean reward clipped to [0, 1] (HealthBench), with a bootstrap standard deviation.
#pragma once
#include <vector>

#include "engine.h"
#include "generate.h"
#include "judge.h"
#include "rubric.h"

namespace rusca {

struct EvalResult {
    double score = 0, score_std = 0, mean_reward = 0;
    std::vector<double> rewards;  // per example
    long tokens = 0;              // generated
    double seconds = 0;
};

// `judge_engine` scores with the judge's weights; `judge` supplies its prompts and answer words.
EvalResult evaluate(InferenceEngine& policy, const Tokenizer& tok, InferenceEngine& judge_engine, const Judge& judge,
                    const std::vector<RubricExample>& data, const GenerateOptions& gen, uint64_t seed);

}  // namespace rusca
