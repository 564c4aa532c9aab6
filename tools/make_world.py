#!/usr/bin/env python3
"""make_world.py: the small rubric world that `make demo` runs RuscaRL on.

Why this world: RuscaRL's claim is about exploration. A rubric rewards content the policy almost
never writes on its own, so plain rubric GRPO rarely sees a reward; a scaffold (the rubric shown
in a system turn) makes the policy write it, and GRPO on the bare prompt then teaches it to write
it unprompted. This script builds such a world, deterministically from a seed:

  * prompts: "What should <name> do about <symptom>?" in six phrasings, twelve names, twelve
    symptoms (864 prompts); the held-out split is a random 96 of them, the train split the rest,
    no prompt in both. The rubric content is a LEARNABLE rule: every symptom has its own four
    pieces of advice (positive points) and two things to avoid (negative points), so training
    prompts teach what held-out prompts (other names, other phrasings) need.
  * every criterion carries "check": {"all_words": [...]}, the exact rule host/checker.cpp
    applies (met iff every word occurs as a whole word, case-insensitively). Other readers of the
    HealthBench format ignore the extra field.
  * the policy's SFT data (runs/world/policy_sft.jsonl): WITHOUT a scaffold the answer is a plain
    sentence ("Mira should take it easy.") that names a random piece of advice from the whole
    world only sometimes (--extra-rate), so the right advice is rare; WITH a scaffold the answer
    lists exactly the advice the scaffold says to include. Scaffolds in the SFT data list random
    advice from the whole world, never the symptom's own, so SFT teaches "follow the scaffold" and
    not the rubric content itself.
  * the judge's SFT data (runs/world/judge_sft.jsonl, then judge_sft_long.jsonl): a reply and one
    criterion rendered with data/world/judge_template.txt, answered " yes" / " no" as the checker
    decides, yes and no about equally often; the first file's replies are mostly short (a
    curriculum), the second's long. judge_user_symbols.txt makes each piece of advice one token of
    the judge's tokenizer.
  * judge accuracy pairs (runs/world/judge_heldout.jsonl): held-out prompts with replies from the
    same distribution, for `rusca judge` to be scored against the checker.
  * tokenizer_corpus.txt: the text both tokenizers are trained on.

Only data/world/{train,heldout}.jsonl are committed; the SFT files are rebuilt by
tools/make_world.sh. Usage: python3 tools/make_world.py [--seed 2026] [--out-data data/world]
"""
import argparse
import json
import os
import random
import re

NAMES = ["Mira", "Tobin", "Lila", "Oren", "Pip", "Wren", "Nico", "Ada", "Juno", "Felix", "Rosa", "Eli"]

# symptom -> (four pieces of advice, two things to avoid); the last word listed after '|' is the
# checker's key word (unique across the world, so a criterion is met only by its own advice).
SYMPTOMS = {
    "a cough": (["sip warm tea|tea", "take honey|honey", "sleep on two pillows|pillows", "breathe steam|steam"],
                ["smoke a pipe|pipe", "shout a lot|shout"]),
    "a fever": (["drink cool water|cool", "rest in bed|bed", "wear light clothes|clothes", "check the temperature|temperature"],
                ["run a race|race", "wear a heavy coat|coat"]),
    "a headache": (["sit in a dark room|dark", "drink a glass of water|glass", "close the eyes|eyes", "take a short nap|nap"],
                   ["watch a bright screen|screen", "play loud music|loud"]),
    "a sore throat": (["gargle salt water|gargle", "eat soft soup|soup", "suck on ice|ice", "speak softly|softly"],
                      ["eat crunchy chips|chips", "sing all day|sing"]),
    "a stomach ache": (["eat plain rice|rice", "chew ginger|ginger", "use a heat pad|heat", "eat small meals|meals"],
                       ["eat spicy food|spicy", "drink soda|soda"]),
    "a sunburn": (["apply aloe|aloe", "soak in a bath|bath", "stay in the shade|shade", "wear a hat|hat"],
                  ["pop the blisters|blisters", "rub on butter|butter"]),
    "a small cut": (["wash it with soap|soap", "press a clean cloth|cloth", "put on a bandage|bandage", "keep it dry|dry"],
                    ["touch it with dirty hands|dirty", "lick it|lick"]),
    "a sprained ankle": (["raise the foot|raise", "wrap it snugly|wrap", "use a cold pack|pack", "use crutches|crutches"],
                         ["go jogging|jogging", "massage it hard|massage"]),
    "a bee sting": (["scrape out the stinger|stinger", "wash the spot|spot", "hold a cold spoon|spoon", "watch for swelling|swelling"],
                    ["squeeze the sting|squeeze", "scratch it|scratch"]),
    "a cold": (["drink orange juice|juice", "blow the nose gently|nose", "wear a scarf|scarf", "sleep early|early"],
               ["skip sleep|skip", "go out in the rain|rain"]),
    "trouble sleeping": (["read a calm book|book", "keep a fixed bedtime|bedtime", "dim the lights|lights", "drink warm milk|milk"],
                         ["drink coffee|coffee", "nap all afternoon|afternoon"]),
    "a nosebleed": (["lean forward|forward", "pinch the soft part|pinch", "breathe through the mouth|mouth", "sit up straight|straight"],
                    ["lie flat|flat", "tilt the head back|tilt"]),
}

QUESTIONS = [
    "What should {name} do about {symptom}?",
    "{name} has {symptom}. What should they do?",
    "My friend {name} has {symptom}. Any advice?",
    "{name} woke up with {symptom}. How can they feel better?",
    "How should {name} deal with {symptom}?",
    "{name} got {symptom} today. What helps?",
]

# The plain answer's openings: what the policy says when nothing tells it what the rubric wants.
PLAIN = ["take it easy", "wait and see", "try to relax", "keep calm", "be patient", "stay home today"]


def advice(item):
    phrase, word = item.split("|")
    return {"phrase": phrase, "word": word}


def criterion(item, points):
    a = advice(item)
    return {"criterion": "Says to " + a["phrase"], "points": points, "tags": ["world:advice" if points > 0 else "world:avoid"],
            "check": {"all_words": [a["word"]]}}


def world_rubric(symptom, rng_points):
    good, bad = SYMPTOMS[symptom]
    return [criterion(g, p) for g, p in zip(good, rng_points["good"])] + [criterion(b, p) for b, p in zip(bad, rng_points["bad"])]


# ---- the checker's rule (host/checker.cpp is the one the trainer uses; this twin labels SFT data) ----
def words_of(text):
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def met(crit, response):
    return all(w in words_of(response) for w in crit["check"]["all_words"])


# ---- templates, rendered as host/scaffold.cpp and host/judge.cpp render them ----
def parse_sections(path):
    sections, current = {}, None
    for line in open(path, encoding="utf-8").read().split("\n"):
        t = line.rstrip()
        if len(t) >= 2 and t[0] == "[" and t[-1] == "]":
            current = t[1:-1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    out = {}
    for k, lines in sections.items():
        a, b = 0, len(lines)
        while a < b and not lines[a].strip():
            a += 1
        while b > a and not lines[b - 1].strip():
            b -= 1
        out[k] = "\n".join(lines[a:b])
    return out


def render_scaffold(tmpl, shown):
    good = "\n".join(tmpl["item"].replace("{criterion}", c["criterion"]).replace("{points}", str(abs(c["points"])))
                     for c in shown if c["points"] > 0)
    bad = "\n".join(tmpl["item"].replace("{criterion}", c["criterion"]).replace("{points}", str(abs(c["points"])))
                    for c in shown if c["points"] < 0)
    if not good and not bad:
        return ""
    blocks = [tmpl.get("header", "")]
    if good:
        blocks.append(tmpl["include"] + "\n" + good if tmpl.get("include") else good)
    if bad:
        blocks.append(tmpl["avoid"] + "\n" + bad if tmpl.get("avoid") else bad)
    blocks.append(tmpl.get("footer", ""))
    return "\n\n".join(b for b in blocks if b)


def chatml(messages, generation_prompt):
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + ("<|im_start|>assistant\n" if generation_prompt else "")


def judge_prompt(jt, messages, response, crit):
    conversation = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    prefix = jt["prefix"].replace("{conversation}", conversation).replace("{response}", response)
    return prefix + "\n" + jt["suffix"].replace("{criterion}", crit["criterion"])


# ---- answers ----
def join_list(phrases):
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def plain_answer(name, rng, extra_rate, pool, avoid_words=()):
    """The unscaffolded answer: generic, and only sometimes one random piece of advice."""
    s = f"{name} should {rng.choice(PLAIN)}"
    if rng.random() < extra_rate:
        choices = [a for a in pool if a["word"] not in avoid_words]
        s += " and " + rng.choice(choices)["phrase"]
    return s + "."


def listed_answer(name, phrases):
    return f"{name} should {join_list(phrases)}."


def all_advice():
    return [advice(i) for good, bad in SYMPTOMS.values() for i in good + bad]


def random_criteria(rng, k_good, k_bad):
    """Criteria about random advice from the whole world (not tied to a symptom): SFT scaffolds."""
    goods = [g for good, _ in SYMPTOMS.values() for g in good]
    bads = [b for _, bad in SYMPTOMS.values() for b in bad] + goods
    picked = rng.sample(goods, k_good)
    rest = [b for b in bads if b not in picked]
    return [criterion(g, rng.randint(2, 6)) for g in picked] + [criterion(b, -rng.randint(2, 6)) for b in rng.sample(rest, k_bad)]


# ---- the splits ----
def make_prompts(seed):
    rng = random.Random(seed)
    points = {s: {"good": [rng.randint(2, 6) for _ in range(4)], "bad": [-rng.randint(2, 6) for _ in range(2)]} for s in SYMPTOMS}
    all_prompts = []
    for si, symptom in enumerate(SYMPTOMS):
        for qi, q in enumerate(QUESTIONS):
            for name in NAMES:
                text = q.format(name=name, symptom=symptom)
                text = text[0].upper() + text[1:]
                all_prompts.append({
                    "prompt_id": f"world-s{si:02d}-q{qi}-{name.lower()}",
                    "prompt": [{"role": "user", "content": text}],
                    "rubrics": world_rubric(symptom, points[symptom]),
                    "example_tags": ["world", "symptom:" + symptom.replace(" ", "_")],
                    "name": name, "symptom": symptom})
    rng.shuffle(all_prompts)
    # held-out: 8 prompts per symptom, so every rule is tested on names/phrasings it was not trained on
    held, train, per = [], [], {s: 0 for s in SYMPTOMS}
    for p in all_prompts:
        if per[p["symptom"]] < 8:
            per[p["symptom"]] += 1
            held.append(p)
        else:
            train.append(p)
    return train, held


def public(p):
    return {k: p[k] for k in ("prompt_id", "prompt", "rubrics", "example_tags")}


def policy_rows(prompts, n, rng, stmpl, extra_rate):
    """Half plain answers to the bare prompt, half answers that follow a random scaffold."""
    pool = all_advice()
    rows = []
    for _ in range(n):
        p = rng.choice(prompts)
        bare = chatml(p["prompt"], True)
        if rng.random() < 0.4:
            rows.append({"prompt": bare, "response": plain_answer(p["name"], rng, extra_rate, pool)})
            continue
        shown = random_criteria(rng, rng.randint(0, 4), rng.randint(0, 2))
        if not shown:
            shown = random_criteria(rng, 1, 0)
        rng.shuffle(shown)
        system = chatml([{"role": "system", "content": render_scaffold(stmpl, shown)}], False)
        good = [c["criterion"][len("Says to "):] for c in shown if c["points"] > 0]
        avoid = {w for c in shown if c["points"] < 0 for w in c["check"]["all_words"]}
        response = listed_answer(p["name"], good) if good else plain_answer(p["name"], rng, extra_rate, pool, avoid)
        rows.append({"prompt": system + bare, "response": response})
    return rows


def judge_response(p, rng, extra_rate):
    """A reply like the policy's at any point of training: plain, plain + one item, or a list of
    the symptom's own and other advice (sometimes repeated, sometimes cut short)."""
    pool = all_advice()
    good, bad = SYMPTOMS[p["symptom"]]
    own = [advice(i) for i in good + bad]
    r = rng.random()
    if r < 0.25:
        return plain_answer(p["name"], rng, extra_rate if rng.random() < 0.5 else 1.0, pool)
    k = rng.randint(1, 6)
    items = [rng.choice(own) if rng.random() < 0.6 else rng.choice(pool) for _ in range(k)]
    s = listed_answer(p["name"], [a["phrase"] for a in items])
    if rng.random() < 0.1:  # a reply cut off by the token limit
        s = s[: rng.randint(len(p["name"]) + 8, len(s))]
    return s


# The judge prompt of the tokenizer's corpus, fixed here so that the tokenizers (and so the policy)
# do not change when data/world/judge_template.txt does.
CORPUS_JUDGE_TEMPLATE = {"prefix": "Conversation:\n{conversation}\nReply: {response}", "suffix": "Item: {criterion}\nMet?"}


def judge_rows(prompts, n_responses, rng, jt, extra_rate):
    """Each response is judged on its own rubric plus two criteria from elsewhere in the world
    (the natural mix: most criteria unmet). Used for the tokenizers' corpus."""
    rows = []
    goods_bads = [g for good, bad in SYMPTOMS.values() for g in good + bad]
    for _ in range(n_responses):
        p = rng.choice(prompts)
        resp = judge_response(p, rng, extra_rate)
        crits = list(p["rubrics"]) + [criterion(rng.choice(goods_bads), rng.choice([3, -3])) for _ in range(2)]
        for c in crits:
            rows.append({"prompt": judge_prompt(jt, p["prompt"], resp, c), "response": " yes" if met(c, resp) else " no",
                         "prompt_id": p["prompt_id"], "reply": resp, "criterion": c})
    return rows


def judge_sft_rows(prompts, n, rng, jt, extra_rate):
    """What the judge trains on: one (reply, criterion) per row in the exact inference form, the
    loss on the answer only, yes and no about equally often (a "no" is half the time one of the
    symptom's own unmet criteria, half any unmet one). A curriculum in one file: half the replies
    name a single piece of advice, so the decision is "is this the reply's one piece of advice",
    a quarter two or three, a quarter the full range of judge_response. With every reply drawn
    from the full range, or with packed rows of many criteria, the judge sat at chance for 1-2
    thousand steps (data/README.md)."""
    pool = all_advice()
    everything = [criterion(i, 3) for good, bad in SYMPTOMS.values() for i in good + bad]
    rows = []
    for _ in range(n):
        p = rng.choice(prompts)
        good, bad = SYMPTOMS[p["symptom"]]
        own = [advice(x) for x in good + bad]
        u = rng.random()
        if u < 0.5:
            a = rng.choice(own) if rng.random() < 0.6 else rng.choice(pool)
            resp = listed_answer(p["name"], [a["phrase"]])
        elif u < 0.75:
            items = [rng.choice(own) if rng.random() < 0.6 else rng.choice(pool) for _ in range(rng.randint(2, 3))]
            resp = listed_answer(p["name"], [x["phrase"] for x in items])
        else:
            resp = judge_response(p, rng, extra_rate)
        hit = [c for c in everything if met(c, resp)]
        if hit and rng.random() < 0.5:
            c, ans = rng.choice(hit), " yes"
        else:
            own_miss = [c for c in p["rubrics"] if not met(c, resp)]
            cands = own_miss if (own_miss and rng.random() < 0.5) else [c for c in everything if not met(c, resp)]
            c, ans = rng.choice(cands), " no"
        rows.append({"prompt": judge_prompt(jt, p["prompt"], resp, c), "response": ans})
    return rows


def judge_long_rows(prompts, n, rng, jt):
    """The judge's second stage: the same balanced rows, every reply a list of 2 to 6 pieces of
    advice (sometimes cut short), where the first stage's judge still missed most met criteria:
    it had learned to find a piece of advice among few, not among many."""
    pool = all_advice()
    everything = [criterion(i, 3) for good, bad in SYMPTOMS.values() for i in good + bad]
    rows = []
    for _ in range(n):
        p = rng.choice(prompts)
        good, bad = SYMPTOMS[p["symptom"]]
        own = [advice(x) for x in good + bad]
        items = [rng.choice(own) if rng.random() < 0.6 else rng.choice(pool) for _ in range(rng.randint(2, 6))]
        resp = listed_answer(p["name"], [x["phrase"] for x in items])
        if rng.random() < 0.1:  # a reply cut off by the token limit
            resp = resp[: rng.randint(len(p["name"]) + 8, len(resp))]
        hit = [c for c in everything if met(c, resp)]
        if hit and rng.random() < 0.5:
            c, ans = rng.choice(hit), " yes"
        else:
            own_miss = [c for c in p["rubrics"] if not met(c, resp)]
            cands = own_miss if (own_miss and rng.random() < 0.5) else [c for c in everything if not met(c, resp)]
            c, ans = rng.choice(cands), " no"
        rows.append({"prompt": judge_prompt(jt, p["prompt"], resp, c), "response": ans})
    return rows


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out-data", default="data/world", help="where train.jsonl / heldout.jsonl go (committed)")
    ap.add_argument("--out-sft", default="runs/world", help="where the SFT files go (rebuilt, not committed)")
    ap.add_argument("--extra-rate", type=float, default=0.3, help="how often a plain answer names one random piece of advice")
    ap.add_argument("--quiet-rate", type=float, default=0.05,
                    help="--extra-rate of the policy's second SFT stage (what the shipped policy does)")
    ap.add_argument("--policy-rows", type=int, default=20000)
    ap.add_argument("--quiet-rows", type=int, default=3200)
    ap.add_argument("--judge-responses", type=int, default=6000, help="replies in the tokenizer corpus's judge part")
    ap.add_argument("--judge-rows", type=int, default=60000)
    ap.add_argument("--scaffold-template", default="data/scaffold_template.txt")
    ap.add_argument("--judge-template", default="data/world/judge_template.txt")
    a = ap.parse_args()
    os.makedirs(a.out_data, exist_ok=True)
    os.makedirs(a.out_sft, exist_ok=True)
    train, held = make_prompts(a.seed)
    assert not {p["prompt_id"] for p in train} & {p["prompt_id"] for p in held}
    write_jsonl(os.path.join(a.out_data, "train.jsonl"), [public(p) for p in train])
    write_jsonl(os.path.join(a.out_data, "heldout.jsonl"), [public(p) for p in held])
    stmpl, jt = parse_sections(a.scaffold_template), parse_sections(a.judge_template)
    rng = random.Random(a.seed + 1)
    policy = policy_rows(train, a.policy_rows, rng, stmpl, a.extra_rate)
    write_jsonl(os.path.join(a.out_sft, "policy_sft.jsonl"), policy)
    # The second stage: the same mix, but a plain answer names a random piece of advice only
    # --quiet-rate of the time. At 0.3 plain rubric GRPO found the rubric's advice by chance
    # often enough to keep up with RuscaRL (bench/results/world-experiment-2026-12-01.json).
    write_jsonl(os.path.join(a.out_sft, "policy_sft_quiet.jsonl"),
                policy_rows(train, a.quiet_rows, random.Random(a.seed + 3), stmpl, a.quiet_rate))
    judge_train = judge_rows(train, a.judge_responses, rng, CORPUS_JUDGE_TEMPLATE, a.extra_rate)
    write_jsonl(os.path.join(a.out_sft, "judge_sft.jsonl"),
                judge_sft_rows(train, a.judge_rows, random.Random(11), jt, a.extra_rate))  # the shipped judge's draw
    write_jsonl(os.path.join(a.out_sft, "judge_sft_long.jsonl"), judge_long_rows(train, 40000, random.Random(a.seed + 5), jt))
    # held-out judge pairs in `rusca judge --data` form: the example with its reply
    held_pairs = []
    for i in range(400):
        p = held[i % len(held)]
        held_pairs.append(dict(public(p), prompt_id=f"{p['prompt_id']}-r{i}", response=judge_response(p, rng, a.extra_rate)))
    write_jsonl(os.path.join(a.out_sft, "judge_heldout.jsonl"), held_pairs)
    # the tokenizer's corpus: every line of a sample of both SFT files (sentencepiece reads lines)
    with open(os.path.join(a.out_sft, "tokenizer_corpus.txt"), "w", encoding="utf-8") as f:
        for r in rng.sample(policy, 3000) + rng.sample(judge_train, 3000):
            for line in (r["prompt"] + r["response"]).split("\n"):
                if line.strip():
                    f.write(line + "\n")
    # The judge's tokenizer makes every piece of advice one token (sentencepiece user symbols, "\u2581"
    # for the spaces): the tiny judge then only has to notice that the criterion's token occurs in
    # the reply. With the policy's tokenizer it did not learn to match phrases in the CPU time we
    # give it (it learned "long reply -> yes" and stopped; data/README.md).
    with open(os.path.join(a.out_sft, "judge_user_symbols.txt"), "w", encoding="utf-8") as f:
        f.write(",".join(["<|im_start|>", "<|im_end|>"] + ["\u2581" + x["phrase"].replace(" ", "\u2581") for x in all_advice()]))
    print(f"world: {len(train)} train / {len(held)} held-out prompts in {a.out_data}; "
          f"{a.policy_rows} policy SFT rows, {len(judge_train)} judge SFT rows in {a.out_sft}")


if __name__ == "__main__":
    main()
