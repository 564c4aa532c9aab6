#!/usr/bin/env python3
"""make_corpus.py: writes the tiny English world rusca's demo model learns from.

Outputs (both plain ASCII, deterministic for a given --seed):
  data/tiny_corpus.txt  one paragraph per line: facts, small stories, Q&A, yes/no answers,
                        sums and health advice about a few invented characters.
  data/tiny_sft.jsonl   {"prompt": ..., "response": ...}: question -> answer pairs, same world.

Why a made-up world: no weights or data sets can be downloaded, and a tiny transformer must see
its loss fall within a couple hundred CPU steps, so the text is small, regular and self-consistent
(every character always has the same pet, age and food, every illness the same advice).
Only the standard library is used, and no set iteration, so the output is byte-identical
on every run and every Python 3 version.

Usage: python3 tools/make_corpus.py [--seed 1234] [--out-dir data] [--paragraphs 1700] [--sft 500]
"""
import argparse
import json
import os
import random

NAMES = [("Mira", "she"), ("Tobin", "he"), ("Lila", "she"), ("Oren", "he"),
         ("Pip", "he"), ("Wren", "she"), ("Nico", "he"), ("Ada", "she")]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "pink", "orange", "gray"]
ANIMALS = ["cat", "dog", "bird", "fish", "rabbit", "horse", "duck", "frog", "goat", "mouse"]
FOODS = ["apples", "bread", "soup", "rice", "beans", "eggs", "pears", "carrots", "cheese", "plums"]
COUNTABLE_FOODS = ["apples", "eggs", "pears", "carrots", "plums", "nuts", "cakes"]
PLACES = ["the park", "the river", "the farm", "the school", "the market", "the hill", "the lake",
          "the garden"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
           "eighteen", "nineteen", "twenty"]
WORLD_FACTS = ["The sky is blue.", "Grass is green.", "Snow is white.", "The sun is yellow.",
               "Night is dark.", "A cat says meow.", "A dog says woof.", "A duck says quack.",
               "Fish live in water.", "Birds can fly.", "A week has seven days.",
               "A day has twenty four hours.", "Milk is white.", "Rain falls from clouds."]

# Each illness keeps the same advice everywhere, so a tiny model can learn the pairing.
# (name, "has a ..." phrase, advice clauses, when to see a doctor)
ILLNESSES = [
    ("cold", "a cold", ["drink water", "rest"], "if the fever is high"),
    ("cough", "a cough", ["drink warm water", "rest"], "if the cough lasts more than a week"),
    ("fever", "a fever", ["drink water", "rest", "stay cool"], "if the fever lasts three days"),
    ("headache", "a headache", ["drink water", "rest in a quiet room"], "if the pain is very bad"),
    ("sore throat", "a sore throat", ["drink warm tea", "rest"], "if it hurts to swallow"),
    ("stomach ache", "a stomach ache", ["eat plain rice", "drink water"], "if there is blood"),
    ("small cut", "a small cut", ["wash the cut with clean water", "cover it"],
     "if the cut is deep"),
    ("burn", "a burn", ["cool the burn with water", "cover it"], "if the burn is large"),
    ("bad sleep", "bad sleep", ["go to bed early", "rest"], "if it lasts many weeks"),
    ("rash", "a rash", ["keep the skin clean", "do not scratch"], "if the rash spreads"),
]
URGENT = [("chest pain", "call for help right away"),
          ("trouble breathing", "call for help right away")]
HABITS = ["Drink water every day.", "Wash your hands before you eat.", "Sleep well at night.",
          "Eat fruit and vegetables.", "Take a walk in the sun.", "Rest when you are tired.",
          "See a doctor when you are very sick.", "Brush your teeth twice a day."]


def join_list(items):
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def cap(s):
    return s[0].upper() + s[1:]


def possessive(pronoun):
    return "her" if pronoun == "she" else "his"


class World:
    """Fixed facts per character, drawn once from the seed."""

    def __init__(self, rng):
        self.people = []
        for name, pron in NAMES:
            self.people.append({
                "name": name, "pron": pron, "pos": possessive(pron),
                "age": rng.randint(6, 12),
                "pet": rng.choice(ANIMALS), "pet_color": rng.choice(COLORS),
                "fav_color": rng.choice(COLORS), "food": rng.choice(FOODS),
                "home": rng.choice(PLACES),
            })
        for i, p in enumerate(self.people):
            p["friend"] = self.people[(i + 1 + rng.randrange(len(NAMES) - 1)) % len(NAMES)]["name"]


# ---- paragraphs for tiny_corpus.txt -------------------------------------------------------

def para_facts(rng, w):
    p = rng.choice(w.people)
    first = f"{p['name']} is {NUMBERS[p['age']]} years old."
    lines = [f"{p['name']} has a {p['pet_color']} {p['pet']}.",
             f"{cap(p['pos'])} favorite food is {p['food']}.",
             f"{cap(p['pron'])} lives near {p['home']}.",
             f"{p['name']} likes the color {p['fav_color']}.",
             f"{cap(p['pos'])} best friend is {p['friend']}."]
    rng.shuffle(lines)
    # The name comes first so that every pronoun in the paragraph has someone to refer to.
    return " ".join([first] + lines[:rng.randint(2, 5)])


def para_story(rng, w):
    p = rng.choice(w.people)
    n, m = rng.randint(2, 9), rng.randint(2, 9)
    animal, color = rng.choice(ANIMALS), rng.choice(COLORS)
    plural = animal + ("es" if animal.endswith("sh") else "s")
    if animal == "mouse":
        plural = "mice"
    if animal == "fish":
        plural = "fish"
    s = [f"One day {p['name']} went to {rng.choice(PLACES)} with {p['pos']} {p['pet']}.",
         f"{cap(p['pron'])} saw {NUMBERS[n]} {color} {plural}.",
         f"{cap(p['pron'])} met {p['friend']} and they played a game.",
         f"They ate {NUMBERS[m]} {rng.choice(COUNTABLE_FOODS)}.",
         f"Then {p['pron']} went home and ate {p['food']}.",
         f"{p['name']} was {rng.choice(['happy', 'tired', 'glad', 'sleepy'])}."]
    return " ".join(s)


def qa_fact(rng, w):
    """One (question, answer) pair about a character, always true in this world."""
    p = rng.choice(w.people)
    kind = rng.randrange(7)
    name = p["name"]
    if kind == 0:
        return f"What color is {name}'s {p['pet']}?", f"{name}'s {p['pet']} is {p['pet_color']}."
    if kind == 1:
        return f"How old is {name}?", f"{name} is {NUMBERS[p['age']]} years old."
    if kind == 2:
        return f"What does {name} like to eat?", f"{name} likes to eat {p['food']}."
    if kind == 3:
        return f"Where does {name} live?", f"{name} lives near {p['home']}."
    if kind == 4:
        return f"What pet does {name} have?", f"{name} has a {p['pet_color']} {p['pet']}."
    if kind == 5:
        return f"What is {name}'s favorite color?", f"{name}'s favorite color is {p['fav_color']}."
    return f"Who is {name}'s best friend?", f"{name}'s best friend is {p['friend']}."


def pick(rng, truth, right, choices):
    """The right answer when truth, else a wrong one: half the yes/no questions say no."""
    return right if truth else rng.choice([c for c in choices if c != right])


def qa_yes_no(rng, w):
    p = rng.choice(w.people)
    truth = rng.random() < 0.5
    kind = rng.randrange(3)
    name = p["name"]
    if kind == 0:
        color = pick(rng, truth, p["pet_color"], COLORS)
        q = f"Is {name}'s {p['pet']} {color}?"
        return q, f"Yes, it is {color}." if truth else f"No, it is {p['pet_color']}."
    if kind == 1:
        pet = pick(rng, truth, p["pet"], ANIMALS)
        q = f"Does {name} have a {pet}?"
        return q, (f"Yes, {p['pron']} has a {pet}." if truth
                   else f"No, {p['pron']} has a {p['pet']}.")
    place = pick(rng, truth, p["home"], PLACES)
    q = f"Does {name} live near {place}?"
    return q, (f"Yes, {p['pron']} lives near {place}." if truth
               else f"No, {p['pron']} lives near {p['home']}.")


def qa_sum(rng, w):
    a, b = rng.randint(0, 10), rng.randint(0, 10)
    if rng.random() < 0.4:
        a, b = max(a, b), min(a, b)
        return (f"What is {NUMBERS[a]} minus {NUMBERS[b]}?",
                f"{cap(NUMBERS[a])} minus {NUMBERS[b]} is {NUMBERS[a - b]}.")
    return (f"What is {NUMBERS[a]} plus {NUMBERS[b]}?",
            f"{cap(NUMBERS[a])} plus {NUMBERS[b]} is {NUMBERS[a + b]}.")


def qa_health(rng, w):
    if rng.random() < 0.1:
        what, todo = rng.choice(URGENT)
        return f"What should I do if I have {what}?", f"{cap(todo)} and see a doctor."
    name, phrase, advice, when = rng.choice(ILLNESSES)
    q = rng.choice([f"What should I do if I have {phrase}?", f"I have {phrase}. What should I do?",
                    f"How do I take care of {phrase}?", f"My friend has {phrase}. How can I help?"])
    return q, f"{cap(join_list(advice))}. See a doctor {when}."


def para_qa(rng, w):
    makers = [qa_fact, qa_fact, qa_yes_no, qa_sum, qa_health]
    pairs = [rng.choice(makers)(rng, w) for _ in range(rng.randint(2, 4))]
    return " ".join(f"Question: {q} Answer: {a}" for q, a in pairs)


def para_health(rng, w):
    p = rng.choice(w.people)
    name, phrase, advice, when = rng.choice(ILLNESSES)
    s = [f"{p['name']} has {phrase}.",
         f"{cap(p['pron'])} should {join_list(advice)}.",
         f"{cap(p['pron'])} should see a doctor {when}."]
    s.append(rng.choice(HABITS))
    return " ".join(s)


def para_sums(rng, w):
    p = rng.choice(w.people)
    a, b = rng.randint(2, 10), rng.randint(1, 9)
    food = rng.choice(COUNTABLE_FOODS)
    if b < a:
        story = (f"{p['name']} had {NUMBERS[a]} {food} and ate {NUMBERS[b]}. "
                 f"Now {p['pron']} has {NUMBERS[a - b]} {food}.")
    else:
        story = (f"{p['name']} had {NUMBERS[a]} {food} and found {NUMBERS[b]} more. "
                 f"Now {p['pron']} has {NUMBERS[a + b]} {food}.")
    x, y = rng.randint(0, 10), rng.randint(0, 10)
    return f"{cap(NUMBERS[x])} and {NUMBERS[y]} make {NUMBERS[x + y]}. {story}"


def para_world(rng, w):
    facts = list(WORLD_FACTS)
    rng.shuffle(facts)
    return " ".join(facts[:rng.randint(3, 5)] + [rng.choice(HABITS)])


PARAGRAPHS = [(para_facts, 3), (para_story, 3), (para_qa, 4), (para_health, 3), (para_sums, 2),
              (para_world, 1)]


def make_corpus(rng, w, n):
    makers = [f for f, weight in PARAGRAPHS for _ in range(weight)]
    return [rng.choice(makers)(rng, w) for _ in range(n)]


# ---- question -> answer pairs for tiny_sft.jsonl ------------------------------------------

def make_sft(rng, w, n):
    """n distinct prompts; the world has a few hundred distinct questions, so draw until full."""
    makers = [qa_fact, qa_fact, qa_yes_no, qa_sum, qa_health]
    pairs = {}  # dict keeps insertion order, so the file order is seeded too
    for _ in range(100 * n):
        if len(pairs) == n:
            break
        q, a = rng.choice(makers)(rng, w)
        pairs.setdefault(q, a)
    return [{"prompt": q, "response": a} for q, a in pairs.items()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1234)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-dir", default=os.path.normpath(os.path.join(here, "..", "data")))
    ap.add_argument("--paragraphs", type=int, default=1700)
    ap.add_argument("--sft", type=int, default=500)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    w = World(rng)
    os.makedirs(args.out_dir, exist_ok=True)
    corpus_path = os.path.join(args.out_dir, "tiny_corpus.txt")
    with open(corpus_path, "w", encoding="ascii", newline="\n") as f:
        for line in make_corpus(rng, w, args.paragraphs):
            f.write(line + "\n")
    sft_path = os.path.join(args.out_dir, "tiny_sft.jsonl")
    sft = make_sft(rng, w, args.sft)
    with open(sft_path, "w", encoding="ascii", newline="\n") as f:
        for row in sft:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {corpus_path} ({os.path.getsize(corpus_path)} bytes, {args.paragraphs} lines), "
          f"{sft_path} ({len(sft)} pairs)")


if __name__ == "__main__":
    main()
