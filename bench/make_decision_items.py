"""Write the 4-way demo items that bench/decisions.py scores (reproducible: fixed seed, fixed source).

    python bench/make_decision_items.py            # writes examples/choice-clear.jsonl, examples/choice-near.jsonl

Source: the held-out CPython-docs sentences of examples/shuffled-pairs.jsonl (their `chosen` side),
8–20 words long, without the `***` heading markup. Each sentence is split after its first half of
words: the prompt is the first half, the real ending the rest.

- clear: the real ending against three word-shuffled endings (all four distinct);
- near: the real ending, the same with two adjacent words swapped, and two word-shuffled endings.

The choices are put in a random order; `label` is the real ending's index.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "shuffled-pairs.jsonl"


def sentences() -> list[list[str]]:
    rows = [json.loads(line) for line in SOURCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    words = [row["chosen"].split() for row in rows]
    return [w for w in words if 8 <= len(w) <= 20 and not any("**" in word for word in w)]


def _shuffled(ending: list[str], taken: set[tuple[str, ...]], rng: random.Random) -> list[str]:
    for _ in range(1000):
        candidate = ending[:]
        rng.shuffle(candidate)
        if tuple(candidate) not in taken:
            taken.add(tuple(candidate))
            return candidate
    raise ValueError("no distinct shuffle")


def _swapped(ending: list[str], rng: random.Random) -> list[str]:
    spots = [i for i in range(len(ending) - 1) if ending[i] != ending[i + 1]]
    i = rng.choice(spots)
    return ending[:i] + [ending[i + 1], ending[i]] + ending[i + 2 :]


def item(index: int, words: list[str], kind: str, rng: random.Random) -> dict:
    cut = max(3, len(words) // 3)
    prompt, ending = words[:cut], words[cut:]
    taken = {tuple(ending)}
    others = []
    if kind == "near":
        swapped = _swapped(ending, rng)
        taken.add(tuple(swapped))
        others.append(swapped)
    while len(others) < 3:
        others.append(_shuffled(ending, taken, rng))
    choices = [ending, *others]
    order = list(range(4))
    rng.shuffle(order)
    return {"id": f"{kind}{index:03d}", "prompt": " ".join(prompt),
            "choices": [" " + " ".join(choices[i]) for i in order], "label": order.index(0)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=40, help="items of each kind (default 40)")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--directory", type=Path, default=ROOT / "examples")
    args = parser.parse_args()
    pool = sentences()
    for offset, kind in enumerate(("clear", "near")):
        rng = random.Random(args.seed + offset)
        chosen = pool[offset :: 2][: args.count]  # the two kinds use different sentences
        rows = [item(i, words, kind, rng) for i, words in enumerate(chosen)]
        path = args.directory / f"choice-{kind}.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        print(f"wrote {len(rows)} items to {path}")


if __name__ == "__main__":
    main()
