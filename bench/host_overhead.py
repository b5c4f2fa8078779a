"""Host time per (record × draw) row outside the forward pass: this tree against another
revision (default `main`), in one run, with a model whose forward pass costs nothing.

    python bench/host_overhead.py                    # 2,000 mixed-length records, 8 draws each
    python bench/host_overhead.py --baseline HEAD~3 --records 500

Two measures, each the best of --repeat runs in a fresh process per tree: the engine alone
(`Engine.run` over ready jobs: dedupe, plan, assemble, scatter) and the whole runner (`score`:
tokenise, draw, plan masks, engine, estimate). The other revision is read with `git archive`
into a temporary directory; nothing in the repository changes.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import json, random, string, sys, time
sys.path.insert(0, {tree!r})
import torch
from itdd_cli.scoring.engine import Engine, Job
from itdd_cli.estimators import Estimator
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.fakes import UniformModel

records, draws, repeat = {records}, {draws}, {repeat}
rng = random.Random(0)
lengths = [rng.choice([rng.randint(4, 40), rng.randint(32, 128), rng.randint(100, 400)]) for _ in range(records)]
generator = torch.Generator().manual_seed(0)
jobs = []
for i, length in enumerate(lengths):
    masks = torch.rand(draws, length, generator=generator) < 0.5
    masks[:, 0] = True
    jobs.append((i, [Job(torch.randint(2, 50, (length,), generator=generator), 0, masks)]))
letters = string.ascii_lowercase
texts = [(i + 1, {{"text": "".join(rng.choice(letters) for _ in range(n))}}) for i, n in enumerate(lengths)]
model = UniformModel()
best = {{"engine": float("inf"), "runner": float("inf")}}
for _ in range(repeat):
    start = time.perf_counter()
    list(Engine(model).run(jobs))
    best["engine"] = min(best["engine"], time.perf_counter() - start)
    start = time.perf_counter()
    list(score(Command.nll, texts, model, Settings(Estimator.stratified, samples=draws)))
    best["runner"] = min(best["runner"], time.perf_counter() - start)
print(json.dumps({{key: value / (records * draws) for key, value in best.items()}}))
"""


def measure(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    code = WORKER.format(tree=str(tree), records=args.records, draws=args.draws, repeat=args.repeat)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tree)
    if done.returncode:
        raise SystemExit(f"the worker failed in {tree}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="the git revision compared against")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", args.baseline], capture_output=True,
                             check=True).stdout  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(directory, filter="data")
        before = measure(Path(directory), args)
    after = measure(ROOT, args)
    print(f"# {args.records} mixed-length records × {args.draws} draws, a forward pass that costs nothing; "
          f"µs per row, best of {args.repeat}")  # fmt: skip
    for key in ("engine", "runner"):
        print(f"{key:7} {args.baseline}: {before[key] * 1e6:8.1f}   this tree: {after[key] * 1e6:8.1f}   "
              f"ratio {before[key] / after[key]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
