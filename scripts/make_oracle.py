"""Write the exact-conditional oracle checkpoint (and example files with the true answers).

    python scripts/make_oracle.py /tmp/oracle-model                     # the checkpoint
    python scripts/make_oracle.py /tmp/oracle-model --examples examples # and examples/oracle-*.jsonl

The checkpoint is a masked LM whose conditionals are exact for a known distribution over
strings of a, b, c, d (length ≤ 8), so every estimate itdd prints can be checked against the
`true_*` fields of the example files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from itdd_cli.oracle import OracleDistribution, write_checkpoint

TEXTS = ["abcd", "dcba", "aaaa", "cab", "ddcbaabc", "b", "badcab"]
CONDITIONALS = [("ab", "cd"), ("dd", "cbaa"), ("a", "b"), ("cabd", "abc")]
PAIRS = [("ab", "cd", "dc"), ("d", "abca", "abcc"), (None, "abcd", "ddda"), (None, "ca", "cabad")]


def write_examples(directory: Path, distribution: OracleDistribution) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    nll = [{"id": f"t{i}", "text": t, "true_nll": distribution.nll(t)} for i, t in enumerate(TEXTS)]
    cond = [
        {"id": f"c{i}", "prompt": p, "response": r, "true_nll": distribution.cond_nll(p, r)}
        for i, (p, r) in enumerate(CONDITIONALS)
    ]
    pairs = []
    for i, (prompt, chosen, rejected) in enumerate(PAIRS):
        truth = distribution.cond_nll(prompt or "", rejected) - distribution.cond_nll(prompt or "", chosen)
        row = {"id": f"p{i}"} | ({"prompt": prompt} if prompt else {})
        pairs.append(row | {"chosen": chosen, "rejected": rejected, "true_log_ratio": truth})
    for name, rows in [("oracle-nll", nll), ("oracle-cond", cond), ("oracle-pairs", pairs)]:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (directory / f"{name}.jsonl").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="where to write the checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random distribution (default 0)")
    parser.add_argument("--examples", type=Path, help="also write oracle-*.jsonl with true answers here")
    args = parser.parse_args()
    distribution = OracleDistribution.random(args.seed)
    write_checkpoint(args.directory, distribution)
    if args.examples:
        write_examples(args.examples, distribution)
    print(f"wrote {args.directory}")


if __name__ == "__main__":
    main()
