// rollout_dump.cpp: one JSONL file of a step's rollouts (rollout_dump.h has the fields).
#include "rollout_dump.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fileio.h"

namespace rusca {

std::string rollout_dump_path(const std::string& out, int step, int rank) {
    char name[48];
    if (rank >= 0) std::snprintf(name, sizeof name, "step_%06d.rank%d.jsonl", step, rank);
    else std::snprintf(name, sizeof name, "step_%06d.jsonl", step);
    return out + "/rollouts/" + name;
}

void write_rollout_dump(const std::string& out, int step, const std::vector<Rollout>& rollouts,
                        const std::vector<const RubricExample*>& prompts, int G, const Tokenizer& tok,
                        uint64_t sample_seed, const std::vector<size_t>* which, int rank) {
    using json = nlohmann::json;
    std::string text;
    for (size_t k = 0; k < rollouts.size(); k++) {
        if (which && std::find(which->begin(), which->end(), k) == which->end()) continue;
        const Rollout& r = rollouts[k];
        const RubricExample& ex = *prompts[r.prompt];
        json shown = json::array(), criteria = json::array();
        for (int c : r.scaffold.shown) shown.push_back({{"criterion", ex.rubrics[c].text}, {"points", ex.rubrics[c].points}});
        for (size_t c = 0; c < ex.rubrics.size(); c++)
            criteria.push_back({{"criterion", ex.rubrics[c].text},
                                {"points", ex.rubrics[c].points},
                                {"met", c < r.met.size() && r.met[c]},
                                {"judge_failed", c < r.failed.size() && r.failed[c]}});
        json line = {{"step", step},
                     {"rollout", k},
                     {"group", r.prompt},
                     {"index", k % G + 1},
                     {"prompt_id", ex.prompt_id},
                     {"lambda", r.scaffold.lambda},
                     {"shown", shown},
                     {"scaffold", r.scaffold.text},
                     {"response", completion_text(tok, r.completion)},
                     {"tokens", r.completion.tokens.size()},
                     {"truncated", !r.completion.stopped},
                     {"criteria", criteria},
                     {"reward", r.reward},
                     {"advantage", r.advantage},
                     {"sample_seed", sample_seed}};
        text += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    make_dirs(out + "/rollouts");
    write_file_atomic(rollout_dump_path(out, step, rank), text);
}

}  // namespace rusca
