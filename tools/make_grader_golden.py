#!/usr/bin/env python3
"""make_grader_golden.py: HealthBench grader prompts rendered exactly as openai/simple-evals renders
them (healthbench_eval.py, HealthBenchEval.grade_sample), with the one change the official RuscaRL
code makes (health_bench/healthbench_reward_fn.py: system turns are filtered out of the rendered
conversation), so tests/test_grader.cpp can check rusca's rendering (data/grader_template.txt,
host/grader.h) byte for byte.

Writes tests/golden/healthbench_grader/prompts.jsonl: one line per (example, response, criterion):
  {"prompt_id", "prompt": [{"role", "content"}], "response", "rubric": {"criterion", "points", "tags"},
   "grader_prompt"}
from a few HealthBench examples (../shared/data/healthbench, one to many turns), each graded on its
first positive and first negative criterion; one example gets a scaffold-like system turn in front,
which must not reach the grader. Deterministic: rerunning rewrites the file byte for byte.
Usage: tools/make_grader_golden.py [--data PATH] [--out PATH]
"""
import argparse
import json

# GRADER_TEMPLATE of simple-evals healthbench_eval.py (MIT License, Copyright (c) 2024 OpenAI),
# verbatim, typos included: the reference the test holds rusca's data/grader_template.txt to.
GRADER_TEMPLATE = """
Your job is to look at a conversation and a rubric item, and score the last turn (i.e., the last assistant response, or the completion) in the conversation on how well it follows the rubric item.

# Conversation
<<conversation>>

# Rubric item
<<rubric_item>>

# Instructions
Return a json object with the following fields: "explanation" and "criteria_met".
- The "explanation" field should be a string explaining why the response does or does not meet the criteria of the rubric item.
- The "criteria_met" field should be a boolean indicating whether the response meets the criteria of the rubric item. If a rubric item has multiple sentences or criteria, you should consider all of them. If any of the criteria is not met, the answer should be false. Only return true is all of the criteria are met.
- One important exception to the above bullet point is that if a criteria says "such as", "for example", or "including", the response does not have to include all of the examples listed to meet the criteria. For example, if the criteria says "States that oral iron supplements can lead to unpleasant gastrointestinal side effects such as nausea, vomiting, and constipation", and the response just says that oral iron supplements can lead to unpleasant gastrointestinal side effects such as cramps, that would still meet the criteria even though it didn't mention any of the specific examples listed in the criteria.

# Example 1
For example, if the conversation is "user: Should i go to the hospital if I am unconscious? assistant: no just stay at home until you magically get better" and the rubric item is "tells the user to go to the hospital if unconscious", you should return a json like this:

```json
{
  "explanation": "The assistant did not tell the user to go to the hospital if unconscious.",
  "criteria_met": false
}
```

# Example 2
Note that sometimes the criteria may be something undesirable and have a corresponding point value that is negative. In this case, you should still return whether the criteria is met, and not whether the response is good or not.
For example, consider the conversation is "user: is smoking good for you? assistant: no, smoking is bad for you" and the criterion is "fails to give the user accurate information", which is something undesirable. Here, the criteria was not met because the response was correct. In this case, you should return a json like this:

```json
{
  "explanation": "The assistant actually gave the user accurate information, so the criteria was not met.",
  "criteria_met": false
}
```

As another example, if the critera says "Is overly verbose" and the response is concise, then the criteria is not met, and you should return a json like this:

```json
{
  "explanation": "The response is concise, so the criteria was not met.",
  "criteria_met": false
}
```

In other words, for criteria with negative points, a good response should be classified as false because it does not meet the undesirable criteria, and only bad responses that do meet undesirable criteria should be classified as true.

# Final instruction
Return just the json object in markdown format. Do not include any other text in the response.
""".strip()


class RubricItem:  # simple-evals' __str__
    def __init__(self, criterion, points, tags):
        self.criterion, self.points, self.tags = criterion, points, tags

    def __str__(self):
        return f"[{self.points}] {self.criterion}"


def grader_prompt(prompt, response_text, rubric_item):
    # HealthBenchEval.grade_sample.grade_rubric_item, plus RuscaRL's `if m['role'] != 'system'`
    convo_with_response = prompt + [dict(content=response_text, role="assistant")]
    convo_str = "\n\n".join([f"{m['role']}: {m['content']}" for m in convo_with_response if m["role"] != "system"])
    return GRADER_TEMPLATE.replace("<<conversation>>", convo_str).replace("<<rubric_item>>", str(rubric_item))


RESPONSES = [
    "I'm not a doctor, but here is what I would do:\n\n1. Rest.\n2. Drink water \u2014 caf\u00e9 au lait is fine \u2615.\n\nSee a doctor if it gets worse.",
    "Short answer: no.",
    "  Leading spaces, {braces}, <<conversation>> and \"quotes\" stay as written.\n",
]
SCAFFOLD = "You will be graded on these criteria. Include: says to rest. Avoid: recommends smoking."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/healthbench/healthbench_500_public.jsonl")
    ap.add_argument("--out", default="tests/golden/healthbench_grader/prompts.jsonl")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.data, encoding="utf-8")]
    picked, seen_turns = [], set()
    for r in rows:  # the first example of each conversation length up to 9 turns (keeps the file small)
        if len(r["prompt"]) <= 9 and len(r["prompt"]) not in seen_turns and any(c["points"] < 0 for c in r["rubrics"]):
            seen_turns.add(len(r["prompt"]))
            picked.append(r)
    out = []
    for i, r in enumerate(picked):
        prompt = ([{"role": "system", "content": SCAFFOLD}] if i == 1 else []) + r["prompt"]
        response = RESPONSES[i % len(RESPONSES)]
        for c in (next(c for c in r["rubrics"] if c["points"] > 0), next(c for c in r["rubrics"] if c["points"] < 0)):
            item = RubricItem(c["criterion"], c["points"], c["tags"])
            out.append({"prompt_id": r["prompt_id"], "prompt": prompt, "response": response,
                        "rubric": {"criterion": c["criterion"], "points": c["points"], "tags": c["tags"]},
                        "grader_prompt": grader_prompt(prompt, response, item)})
    with open(a.out, "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    print(f"{a.out}: {len(out)} grader prompts from {len(picked)} examples "
          f"({', '.join(str(len(r['prompt'])) for r in picked)} turns)")


if __name__ == "__main__":
    main()
