"""Writes pgg's built-in toy datasets (run once; the files are committed).

toy-sentiment: short movie-review sentences, label 0 negative / 1 positive, in the 16-shot TSV layout
(train 16 per class, dev 16 per class, test 100 per class). toy-news: short made-up news articles with
one-sentence summaries, as JSONL {article, summary}. Both are written for pgg, from the phrase lists below,
so demos and tests run with no network. They show the machinery; they are not benchmarks.
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).parent

SUBJECTS = [
    "the film",
    "this movie",
    "the acting",
    "the plot",
    "the soundtrack",
    "the ending",
    "the cast",
    "the script",
    "the direction",
    "the story",
    "the dialogue",
    "the camera work",
    "the pacing",
    "the lead actor",
    "the final scene",
    "the humor",
    "the sequel",
    "the whole thing",
]
POSITIVE = [
    "was wonderful",
    "is a delight from start to finish",
    "felt fresh and moving",
    "works beautifully",
    "is sharp, funny and warm",
    "left me smiling",
    "is a real triumph",
    "was great fun",
    "is clever and heartfelt",
    "shines in every scene",
    "is gorgeous to watch",
    "deserves every award",
    "kept me hooked",
    "is simply brilliant",
    "was a joy",
    "feels honest and alive",
]
NEGATIVE = [
    "was terrible",
    "is a chore to sit through",
    "felt flat and lifeless",
    "falls apart quickly",
    "is dull, loud and empty",
    "left me bored",
    "is a real mess",
    "was painful to watch",
    "is lazy and cynical",
    "drags in every scene",
    "is ugly to look at",
    "deserves to be forgotten",
    "lost me early",
    "is simply awful",
    "was a waste of time",
    "feels fake and tired",
]
OPENERS = ["", "honestly, ", "overall, ", "sadly, ", "frankly, ", "in the end, ", "to be fair, "]

CITIES = ["Riverton", "Lakeside", "Northfield", "Eastport", "Millbrook", "Greenhill", "Stonebridge", "Fairview"]
BODIES = ["city council", "school board", "transit agency", "health department", "water authority", "parks office"]
ACTIONS = [
    ("build a new library", "new library"),
    ("repair the old bridge", "bridge repairs"),
    ("extend the bus line", "a longer bus line"),
    ("open two clinics", "two new clinics"),
    ("replace the water pipes", "new water pipes"),
    ("plant a thousand trees", "a thousand new trees"),
    ("hire more teachers", "more teachers"),
    ("add bike lanes downtown", "downtown bike lanes"),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
REASONS = [
    "residents had asked for it for years",
    "the old one was falling apart",
    "demand has doubled",
    "a state grant covers half of the cost",
    "a survey showed strong support",
]


def sentiment(rng: random.Random, label: int) -> str:
    text = f"{rng.choice(OPENERS)}{rng.choice(SUBJECTS)} {rng.choice(POSITIVE if label else NEGATIVE)}."
    return text[0].upper() + text[1:]


def write_sentiment() -> None:
    rng = random.Random(0)
    seen: set[str] = set()
    out = HERE / "toy-sentiment"
    out.mkdir(exist_ok=True)
    for split, per_class in (("train", 16), ("dev", 16), ("test", 100)):
        rows = []
        for label in (0, 1):
            while sum(r[1] == label for r in rows) < per_class:
                text = sentiment(rng, label)
                if text not in seen:
                    seen.add(text)
                    rows.append((text, label))
        rng.shuffle(rows)
        with open(out / f"{split}.tsv", "w") as f:
            f.write("sentence\tlabel\n")
            f.writelines(f"{t}\t{y}\n" for t, y in rows)


def article(rng: random.Random) -> dict[str, str]:
    city, body, (action, noun), day = rng.choice(CITIES), rng.choice(BODIES), rng.choice(ACTIONS), rng.choice(DAYS)
    cost, votes = rng.randint(2, 90), rng.randint(4, 9)
    reason = rng.choice(REASONS)
    text = (
        f"The {city} {body} voted {votes} to {rng.randint(0, 3)} on {day} to {action}. "
        f"The plan will cost about {cost} million dollars and work should start next year. "
        f"Officials said {reason}. Some residents worried about the cost, but most speakers at the meeting "
        f"supported the plan. A final report is expected in the spring."
    )
    summary = f"{city} {body} approves {noun} costing {cost} million dollars."
    return {"article": text, "summary": summary}


def write_news() -> None:
    rng = random.Random(1)
    out = HERE / "toy-news"
    out.mkdir(exist_ok=True)
    for split, n in (("train", 96), ("validation", 16), ("test", 16)):
        with open(out / f"{split}.jsonl", "w") as f:
            for _ in range(n):
                f.write(json.dumps(article(rng)) + "\n")


if __name__ == "__main__":
    write_sentiment()
    write_news()
