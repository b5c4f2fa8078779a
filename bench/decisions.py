"""--until-decided against LLaDA's fixed protocol: forward rows, accuracy, agreement, wrong decisions.

    python bench/decisions.py                       # everything below (about 10 minutes on 2 busy cores)
    python bench/decisions.py --part demo --level 0.01
    python bench/decisions.py --part oracle --seeds 16

demo: the bundled demo model on the 4-way items of examples/choice-clear.jsonl (the real ending
against three word-shuffled endings) and examples/choice-near.jsonl (the real ending, the same with
two adjacent words swapped, two shuffled endings), written by bench/make_decision_items.py. Each set
is scored three ways: `--until-decided LEVEL -n FIRST --max-samples CAP` (adaptive), a fixed
`-n 128` (LLaDA's protocol: 128 draws per choice), and a reference `--until-decided LEVEL
--max-samples REFERENCE`; printed: forward rows of both, their ratio, the accuracy of both, and on
the items both the adaptive run and the reference decided, how many picks agree.

oracle: the exact-conditional oracle on 4-way items whose true conditional NLLs put the best choice
0.05–1 nats ahead of the runner-up (`itdd_cli.oracle.close_choices`), over --seeds seeds: every
planned round of every choice is drawn once, then the anytime-valid rule and the fixed-z rule it
replaced (stop once margin > z SE, z the two-sided normal quantile of α, at every look) are replayed
on the same draws (`estimators.decisions.replay`, which makes exactly a run's decisions). Printed:
decided and wrong decisions per rule and α, and the count a Binomial(runs, α) exceeds with
probability 0.01.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import NormalDist
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.bundled import bundled_path  # noqa: E402
from itdd_cli.estimators.decisions import FixedZ, Spending, replay  # noqa: E402
from itdd_cli.estimators.levels import alpha_of  # noqa: E402
from itdd_cli.estimators.tdist import binomial_upper  # noqa: E402
from itdd_cli.io.records import Fields  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.oracle import OracleDistribution, close_choices, write_checkpoint  # noqa: E402
from itdd_cli.results.rows import FIXED_PROTOCOL_DRAWS, SPECS  # noqa: E402
from itdd_cli.scoring import draws as draws_module  # noqa: E402
from itdd_cli.scoring.draws import run_rounds  # noqa: E402
from itdd_cli.scoring.engine import Engine  # noqa: E402
from itdd_cli.scoring.runner import Command, Settings, prepare, score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _rows(model, objects, settings):
    return list(score(Command.choice, objects, model, settings))


def demo(args: argparse.Namespace) -> None:
    model = load_model(LoadOptions(str(bundled_path("demo"))))
    print(f"demo model, 4-way items; adaptive: --until-decided {args.level:g} (α = {alpha_of(args.level):.4g}) "
          f"-n {args.first} --max-samples {args.cap}; fixed: -n {FIXED_PROTOCOL_DRAWS}; reference: "
          f"--until-decided {args.level:g} --max-samples {args.reference}")  # fmt: skip
    header = (f"{'items':>6} {'n':>3} {'rows adaptive':>13} {'rows fixed':>10} {'fewer':>6} {'acc adaptive':>12} "
              f"{'acc fixed':>9} {'decided':>7} {'both decided':>12} {'agree':>5} {'wall s':>6}")  # fmt: skip
    print(header)
    for kind in ("clear", "near"):
        path = ROOT / "examples" / f"choice-{kind}.jsonl"
        objects = [(line, json.loads(text)) for line, text in enumerate(path.read_text().splitlines(), 1)]
        started = time.perf_counter()
        adaptive = _rows(model, objects, Settings(samples=args.first, until_decided=args.level,
                                                  max_samples=args.cap, seed=args.seed))  # fmt: skip
        fixed = _rows(model, objects, Settings(samples=FIXED_PROTOCOL_DRAWS, seed=args.seed))
        reference = _rows(model, objects, Settings(samples=args.first, until_decided=args.level,
                                                   max_samples=args.reference, seed=args.seed + 1))  # fmt: skip
        rows_adaptive = sum(row["passes"] for row in adaptive)
        rows_fixed = sum(row["passes"] for row in fixed)
        both = [(a, r) for a, r in zip(adaptive, reference, strict=True) if a["decided"] and r["decided"]]
        agree = sum(a["pred"] == r["pred"] for a, r in both)
        accuracy = [sum(row["correct"] for row in rows) for rows in (adaptive, fixed)]
        decided = sum(row["decided"] for row in adaptive)
        print(f"{kind:>6} {len(objects):>3} {rows_adaptive:>13} {rows_fixed:>10} {rows_fixed / rows_adaptive:>5.1f}× "
              f"{accuracy[0]:>9}/{len(objects)} {accuracy[1]:>6}/{len(objects)} {decided:>7} {len(both):>12} "
              f"{agree:>5} {time.perf_counter() - started:>6.0f}")  # fmt: skip


class _Never:
    """A rule that never decides: every planned round is drawn, for replaying rules afterwards."""

    def beats(self, *args: object) -> bool:
        return False


def oracle(args: argparse.Namespace) -> None:
    distribution = OracleDistribution.random(7)
    items = close_choices(distribution)
    with tempfile.TemporaryDirectory() as directory:
        model = load_model(LoadOptions(str(write_checkpoint(directory, distribution)), trust_remote_code=True))
        runs = []
        for seed in range(args.seeds):
            settings = Settings(samples=6, max_samples=96, until_decided=0.05, seed=seed)  # 3 letters: drawn at 6
            prepared = []
            for number, (prompt, group, _) in enumerate(items):
                order = group[seed % 4 :] + group[: seed % 4]  # the true best (group[0]) in each place in turn
                record = SPECS[Command.choice].parse({"prompt": prompt, "choices": order}, number + 1, Fields())
                prepared.append((prepare(model, record, settings), order.index(group[0])))
            with mock.patch.object(draws_module, "decision_rule", lambda settings: _Never()):
                list(run_rounds(Engine(model), iter(p for p, _ in prepared), lambda item: item.draws, adaptive=True))
            runs += [(p.draws.tallies, best) for p, best in prepared]
    print(f"\noracle: {len(items)} 4-way items (true margin best − runner-up 0.05–1 nats) × {args.seeds} seeds = "
          f"{len(runs)} runs, -n 6 --max-samples 96 (looks at 6, 12, 24, 48, 96 passes per choice)")  # fmt: skip
    print(f"{'rule':>22} {'α':>6} {'decided':>8} {'wrong':>6} {'wrong rate':>10} {'binomial bound':>14}")
    for alpha in sorted({0.05, 0.01, alpha_of(args.level)}, reverse=True):
        bound = binomial_upper(len(runs), alpha)
        z = NormalDist().inv_cdf(1 - alpha / 2)
        for name, rule in (("anytime (spending)", Spending(alpha)), (f"fixed z = {z:.2f}", FixedZ(z))):
            decided = wrong = 0
            for tallies, best in runs:
                done, pick, _ = replay([tally.values for tally in tallies], tallies[0].strata, rule)
                decided += done
                wrong += done and pick != best
            print(f"{name:>22} {alpha:>6.4g} {decided:>8} {wrong:>6} {wrong / len(runs):>10.4f} {bound:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["demo", "oracle", "all"], default="all")
    parser.add_argument("--level", type=float, default=3.0, help="--until-decided level (default 3: α = 0.0027)")
    parser.add_argument("--first", type=int, default=8, help="-n: the first round's passes per choice (8)")
    parser.add_argument("--cap", type=int, default=128, help="--max-samples (128)")
    parser.add_argument("--reference", type=int, default=1024, help="the reference's --max-samples (1024)")
    parser.add_argument("--seeds", type=int, default=8, help="oracle seeds (8: over 1,000 runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.part in ("demo", "all"):
        demo(args)
    if args.part in ("oracle", "all"):
        oracle(args)


if __name__ == "__main__":
    main()
