"""Variance of every estimator at equal forward passes, against `stratified` and LLaDA's
published estimator; the DNA fit; unbiasedness and calibration on the oracle; L≈256.
Coupled against independent ratio draws: bench/coupling.py.

    python bench/variance.py                         # modest run, every part (minutes on 2 cores)
    python bench/variance.py --part demo --reps 300  # the issue's full measurement (GPU advised)
    python bench/variance.py --part dna8 --part oracle

Every number is measured in this run. A record's variance is taken across --reps seeds; a
"gain" is var(baseline) / var(estimator) at the same forward passes per record (the control
variate's pilot counted inside), and the table prints its median and range over records.

LLaDA's estimator is re-implemented from its description (its get_log_likelihood.py): batches
of 16 rows whose masked counts lie on a grid k, k + L/16, … (mod L) with a uniform random
offset k, the masked positions uniformly random, each row weighted L / count.

Cases: `demo` scores 12 held-out English sentences (the `held*` lines of
examples/shuffled-pairs.jsonl whose text is 16–25 tokens, the L range of the issue's
measurement; the demo model never saw them); `dna8` the sequences of examples/dna8.jsonl, whose
`true_nll` is exact; `oracle` strings whose −log p is known in closed form; `long` a random
LLaDA-format model on ≈256-token texts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.bundled import bundled_path  # noqa: E402
from itdd_cli.estimators import DEFAULT_ESTIMATOR, MONTE_CARLO, Estimator, record_generator  # noqa: E402
from itdd_cli.io.records import Fields  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.oracle import OracleDistribution, write_checkpoint  # noqa: E402
from itdd_cli.results.rows import SPECS, Command  # noqa: E402
from itdd_cli.scoring.draws import run_rounds  # noqa: E402
from itdd_cli.scoring.engine import Engine, Job  # noqa: E402
from itdd_cli.scoring.runner import Settings, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LLADA = "llada-published"
ORACLE_TEXTS = ["abcdabcd", "ddcbaabc", "badcab", "cabdd", "bbacdb"]


def _records(command: Command, objects: list[dict]) -> list:
    return [SPECS[command].parse(obj, i + 1, Fields()) for i, obj in enumerate(objects)]


def estimates(model, command, records, estimator, samples, reps, independent=False):
    """(records, reps) tensors of values and SEs; one engine run batches every seed."""
    prepared = [
        prepare(model, record, Settings(estimator=estimator, samples=samples, seed=seed, independent=independent))
        for record in records
        for seed in range(reps)
    ]
    list(run_rounds(Engine(model), iter(prepared), lambda item: item.draws, adaptive=False))
    found = [p.draws.difference() if command is Command.ratio else p.draws.estimates()[0] for p in prepared]
    value = torch.tensor([e.value for e in found], dtype=torch.float64).view(len(records), reps)
    se = torch.tensor([e.se for e in found], dtype=torch.float64).view(len(records), reps)
    return value, se


def llada_estimates(model, records, samples, reps):
    """LLaDA's published Monte Carlo estimator (batches of 16 on a grid), (records, reps)."""
    jobs, counts = [], []
    for record in records:
        framed = prepare(model, record, Settings(samples=2)).framed[0]
        length = framed.length
        for seed in range(reps):
            generator = record_generator(seed, framed.ids, [-7])
            rows = []
            for _ in range(max(1, samples // 16)):
                k = int(torch.randint(1, length + 1, (), generator=generator))
                grid = torch.round(torch.linspace(float(k), k + 15 * (length / 16), steps=16)).long()
                rows.append((grid - 1) % length + 1)
            count = torch.cat(rows)  # (N,)
            keys = torch.rand(len(count), length, generator=generator)
            masks = keys.argsort(1).argsort(1) < count[:, None]
            jobs.append(Job(torch.tensor(framed.ids), framed.start, masks))
            counts.append((count, length))
    out = list(Engine(model).run((i, [job]) for i, job in enumerate(jobs)))
    values = [((length / count.double()) * losses[0].sum(1)).mean() for (_, losses), (count, length) in
              zip(out, counts, strict=True)]  # fmt: skip
    return torch.stack(values).view(len(records), reps)


def gain_line(name, baseline, other):
    ratios = [float(b) / float(o) if float(o) > 0 else float("inf") for b, o in zip(baseline, other, strict=True)]
    return f"{name:<34} median {statistics.median(ratios):6.2f}×  (range {min(ratios):.2f}–{max(ratios):.2f})"


def variance_table(model, records, samples_list, reps, estimators, label):
    started = time.perf_counter()
    for samples in samples_list:
        print(f"\n# {label}: variance across {reps} seeds at {samples} passes per record, {len(records)} records")
        var = {e: estimates(model, Command.nll, records, e, samples, reps)[0].var(1) for e in estimators}
        llada = llada_estimates(model, records, samples, reps).var(1)
        for estimator in estimators:
            if estimator is not Estimator.stratified:
                print(gain_line(f"stratified / {estimator.value}", var[Estimator.stratified], var[estimator]))
        for estimator in estimators:
            print(gain_line(f"{LLADA} / {estimator.value}", llada, var[estimator]))
        print(f"({time.perf_counter() - started:.0f} s so far)", flush=True)


def demo_records(model, count):
    lines = [json.loads(line) for line in (ROOT / "examples" / "shuffled-pairs.jsonl").read_text().splitlines()]
    texts = [p["chosen"] for p in lines if 16 <= len(model.encode(p["chosen"])) <= 25][:count]
    return _records(Command.nll, [{"text": t} for t in texts])


def part_demo(args):
    model = load_model(LoadOptions(str(bundled_path("demo"))))
    variance_table(model, demo_records(model, args.records), args.samples, args.reps, args.estimators, "demo")


def r_squared(estimated, truth):
    residual = ((truth - estimated) ** 2).sum()
    return float(1 - residual / ((truth - truth.mean()) ** 2).sum())


def _share_within(reps: int, low: float = 0.8, high: float = 1.25) -> float:
    """P(low ≤ s/σ ≤ high) for the spread s of `reps` normal draws: what a perfect SE would show."""
    dof = torch.tensor(float(reps - 1), dtype=torch.float64)

    def chi2_cdf(x: float) -> float:  # (reps − 1)·s²/σ² is χ² with reps − 1 degrees of freedom
        return float(torch.special.gammainc(dof / 2, dof * x / 2))

    return chi2_cdf(high**2) - chi2_cdf(low**2)


def part_dna8(args):
    model = load_model(LoadOptions(str(bundled_path("dna8"))))
    rows = [json.loads(line) for line in (ROOT / "examples" / "dna8.jsonl").read_text().splitlines()]
    records = _records(Command.nll, [{"text": r["text"]} for r in rows])
    truth = torch.tensor([r["true_nll"] for r in rows], dtype=torch.float64)
    reps = max(args.reps, 8)
    print(
        f"\n# dna8: {len(rows)} sequences, fit to true_nll at 128 passes (seed 0) and SE calibration over {reps} seeds"
    )
    var = {}
    for estimator in args.estimators:
        value, se = estimates(model, Command.nll, records, estimator, 128, reps)
        var[estimator] = value.var(1)
        calibration = value.std(1) / se.mean(1)
        print(
            f"{estimator.value:<16} R² {r_squared(value[:, 0], truth):.3f}   SE calibration (spread / mean SE) median "
            f"{calibration.median():.2f}, 10–90% {calibration.quantile(0.1):.2f}–{calibration.quantile(0.9):.2f}, "
            f"{float(((calibration >= 0.8) & (calibration <= 1.25)).double().mean()):.0%} of rows in 0.8–1.25 "
            f"(a calibrated SE gives ≈ {_share_within(reps):.0%} at {reps} seeds)"
        )
    for estimator in args.estimators:
        if estimator is not Estimator.stratified:
            print(gain_line(f"stratified / {estimator.value}", var[Estimator.stratified], var[estimator]))


def part_oracle(args):
    distribution = OracleDistribution.random(0)
    with tempfile.TemporaryDirectory() as directory:
        model = load_model(LoadOptions(str(write_checkpoint(Path(directory), distribution)), trust_remote_code=True))
        records = _records(Command.nll, [{"text": t} for t in ORACLE_TEXTS])
        truth = torch.tensor([distribution.nll(t) for t in ORACLE_TEXTS], dtype=torch.float64)
        seeds = 40
        print(f"\n# oracle: bias in SE of the mean over {seeds} seeds, and calibration (spread / mean SE), 32 passes")
        for estimator in MONTE_CARLO:
            value, se = estimates(model, Command.nll, records, estimator, 32, seeds)
            if value.std(1).max() < 1e-5:  # the chain rule on a consistent model: each order is exact
                error = (value - truth[:, None]).abs().max()
                print(f"{estimator.value:<16} every draw exact to float32 rounding: max |error| {error:.1e} nats")
                continue
            z = (value.mean(1) - truth) / (value.std(1) / seeds**0.5).clamp_min(1e-9)
            calibration = value.std(1) / se.mean(1).clamp_min(1e-12)
            print(
                f"{estimator.value:<16} max |bias|/SE {z.abs().max():5.2f}   calibration "
                f"{' '.join(f'{c:.2f}' for c in calibration.tolist())}"
            )


def part_long(args):
    sys.path.insert(0, str(ROOT))
    from tests.support.family_checkpoints import write_llada

    with tempfile.TemporaryDirectory() as directory:
        model = load_model(LoadOptions(str(write_llada(Path(directory), max_length=512))))
        generator = torch.Generator().manual_seed(0)
        letters = "abcdefghijklmnopqrstuvwxyz "
        texts = ["".join(letters[i] for i in torch.randint(0, 27, (256,), generator=generator)) for _ in range(3)]
        records = _records(Command.nll, [{"text": t} for t in texts])
        print(f"\n# long: random LLaDA-format model, L = {len(model.encode(texts[0]))} tokens")
        variance_table(model, records, [args.samples[0]], args.reps, [Estimator.stratified, DEFAULT_ESTIMATOR],
                       "long")  # fmt: skip


PARTS = {"demo": part_demo, "dna8": part_dna8, "oracle": part_oracle, "long": part_long}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=list(PARTS), help="what to measure (default: all)")
    parser.add_argument("--reps", type=int, default=8, help="seeds per estimate (default 8; the issue: 300)")
    parser.add_argument("--records", type=int, default=6, help="demo sentences (default 6; the issue: 12)")
    parser.add_argument("--samples", type=int, action="append", help="passes per record (default: 128 and 32)")
    parser.add_argument("--estimator", action="append", type=Estimator, help="default: every Monte Carlo one")
    args = parser.parse_args()
    args.samples = args.samples or [128, 32]
    args.estimators = args.estimator or MONTE_CARLO
    if Estimator.stratified not in args.estimators:
        args.estimators = [Estimator.stratified, *args.estimators]
    for part in args.part or list(PARTS):
        PARTS[part](args)


if __name__ == "__main__":
    main()
