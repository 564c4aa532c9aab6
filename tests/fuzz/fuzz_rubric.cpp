// fuzz_rubric.cpp: rubric JSONL (HealthBench format) through load_rubric_jsonl, with and without
// required rubrics, then what training does with each example: the scaffold, the checker, the reward.
#include <vector>

#include "host/checker.h"
#include "host/rng.h"
#include "host/rubric.h"
#include "host/scaffold.h"
#include "tests/fuzz/fuzz_target.h"

RUSCA_FUZZ_TARGET(rubric) {
    const std::string path = rusca::fuzz::scratch_file("fuzz_rubric.jsonl", data, size);
    static const rusca::ScaffoldTemplate tmpl =
        rusca::ScaffoldTemplate::load(rusca::fuzz::source_path("data/scaffold_template.txt"));
    for (bool need_rubrics : {true, false})
        rusca::fuzz::expect_clean(path, [&] {
            for (const rusca::RubricExample& ex : rusca::load_rubric_jsonl(path, need_rubrics)) {
                if (ex.rubrics.empty()) continue;
                std::vector<const rusca::Criterion*> all;
                for (const rusca::Criterion& c : ex.rubrics) all.push_back(&c);
                tmpl.render(all);
                rusca::rubric_reward(ex, std::vector<bool>(ex.rubrics.size(), true));
                if (rusca::all_checked({ex})) rusca::checker_verdicts(ex, "drink water and rest, honey helps");
                rusca::ScaffoldSchedule sched;
                rusca::Rng rng(1);
                rusca::build_group_scaffolds(ex, sched, 1, 10, 4, tmpl, rng);
            }
        });
}
