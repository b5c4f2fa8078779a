"""Time-free against time-integral (DSE) estimators on a tiny absorbing SEDD model trained here.

    python bench/sedd_variance.py                      # 5 minutes of training, then the comparison (CPU)
    python bench/sedd_variance.py --train-seconds 30 --reps 20

A toy language of 144 equally likely sentences ("the cat sat on a mat." with 4 · 3 · 3 · 4
choices, every sentence 21 characters) gives an exact answer: −log p = log 144 = 4.970 nats
for every sentence. A SEDD DiT (absorbing graph, log-linear noise, SEDD's loss, framing tokens
never corrupted as itdd scores them) is trained on it for --train-seconds, saved in SEDD's
published layout (hydra config.json + model.safetensors) with a character tokenizer, loaded
back through the `sedd` family, and every sentence of a held set is scored --reps times (one
seed each) with each estimator at the same -n forward passes per record (the DSE's one prior
pass not counted), and once more with the DSE's times drawn independently as SEDD's loss draws
them (itdd stratifies them). A record's variance is taken across the seeds; the "ratio" is
var(dse) / var(estimator), printed as its median and range over the records.

The two sides estimate different bounds of an imperfect model: the time-free estimators the
NELBO of the conditionals the score implies, dse SEDD's own score-entropy bound; their means are
printed next to the truth. Every number is measured in this run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.estimators import Estimator, draw_noise  # noqa: E402
from itdd_cli.estimators.dse import Schedule, absorbing_entropy, expm1_sigma, times  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.models.dit import DiT  # noqa: E402
from itdd_cli.results.rows import Command  # noqa: E402
from itdd_cli.scoring.runner import Settings, score  # noqa: E402

SUBJECTS, VERBS, PREPOSITIONS, OBJECTS = ["cat", "dog", "owl", "fox"], ["sat", "ran", "hid"], ["on", "by", "in"], [
    "mat", "log", "box", "rug"]  # fmt: skip
SENTENCES = [f"the {s} {v} {p} a {o}." for s, v, p, o in itertools.product(SUBJECTS, VERBS, PREPOSITIONS, OBJECTS)]
TRUTH = math.log(len(SENTENCES))
EOS = "<|endoftext|>"
SIZES = dict(hidden_size=64, n_heads=4, n_blocks=2, cond_dim=32)
ESTIMATORS = [Estimator.time_free, Estimator.stratified, Estimator.control_variate]


def write_tokenizer(directory: Path) -> dict[str, int]:
    """A character tokenizer, EOS at 0 (GPT-2's role for it)."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    letters = sorted(set("".join(SENTENCES)))
    vocab = {EOS: 0} | {letter: i + 1 for i, letter in enumerate(letters)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=EOS))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    backend.add_special_tokens([AddedToken(EOS, special=True)])
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=EOS, eos_token=EOS, unk_token=EOS).save_pretrained(
        directory
    )
    return vocab


def train(vocab: dict[str, int], seconds: float, seed: int) -> tuple[DiT, int, list[float]]:
    """SEDD's loss (absorbing graph, log-linear noise, scale_by_sigma) on [EOS] sentence [EOS] rows."""
    torch.manual_seed(seed)
    tokens = len(vocab)
    mask = tokens
    model = DiT(tokens + 1, SIZES["hidden_size"], SIZES["n_blocks"], SIZES["n_heads"], SIZES["cond_dim"])
    torch.nn.init.kaiming_uniform_(model.vocab_embed.embedding, a=math.sqrt(5))
    for block in [*model.blocks, model.output_layer]:  # SEDD zero-initialises the modulation and the head
        torch.nn.init.zeros_(block.adaLN_modulation.weight)
        torch.nn.init.zeros_(block.adaLN_modulation.bias)
    torch.nn.init.zeros_(model.output_layer.linear.weight)
    torch.nn.init.zeros_(model.output_layer.linear.bias)
    rows = torch.tensor([[0, *(vocab[c] for c in s), 0] for s in SENTENCES])
    where = torch.ones(rows.shape[1], dtype=torch.bool)
    where[0] = where[-1] = False
    schedule = Schedule("loglinear")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    losses, start, steps = [], time.time(), 0
    while time.time() - start < seconds:
        batch = rows[torch.randint(len(rows), (64,), generator=generator)]
        noise = draw_noise(64, rows.shape[1], generator)
        t = times(noise.u)
        sigma, rate = schedule.total(t), schedule.rate(t)
        move = (noise.keys < -torch.expm1(-sigma)[:, None]) & where[None]  # the absorbing forward process
        x = torch.where(move, mask, batch)
        hidden, c = model.hidden(x, sigma.float())
        score = model.output_layer(hidden.reshape(-1, hidden.shape[-1]), c.repeat_interleave(x.shape[1], 0))
        score = score - expm1_sigma(sigma).log().float().repeat_interleave(x.shape[1])[:, None] - math.log(tokens)
        score = score.scatter(-1, x.reshape(-1, 1), 0.0)
        entropy = absorbing_entropy(score, sigma.float().repeat_interleave(x.shape[1]), x.reshape(-1),
                                    batch.reshape(-1), mask).view(x.shape)  # fmt: skip
        loss = (rate.float() * (entropy * where).sum(dim=1)).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        steps += 1
    return model, steps, losses


def save(model: DiT, tokens: int, directory: Path) -> None:
    from safetensors.torch import save_file

    config = {"tokens": tokens, "graph": {"type": "absorb"}, "noise": {"type": "loglinear", "sigma_min": 1e-4,
              "sigma_max": 20}, "model": {"name": "toy", "type": "ddit", "length": 32, "scale_by_sigma": True,
              "dropout": 0.1, **SIZES}}  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))


def measure(model, texts: list[str], estimator: Estimator, samples: int, reps: int) -> list[list[float]]:
    """nll per (record, seed)."""
    objects = [(i + 1, {"text": text}) for i, text in enumerate(texts)]
    by_seed = [[row["nll"] for row in score(Command.nll, objects, model, Settings(estimator, samples, seed=seed))]
               for seed in range(reps)]  # fmt: skip
    return [list(column) for column in zip(*by_seed, strict=True)]


def measure_iid(model, texts: list[str], samples: int, reps: int) -> list[list[float]]:
    """dse with t drawn independently (SEDD's own sampling), not stratified: nll per (record, seed)."""
    from itdd_cli.estimators.sampling import Noise
    from itdd_cli.scoring.dse_draws import corrupt, dse_values, prior_term

    out = []
    for text in texts:
        framed = model.frame([], model.encode(text))
        prior, values = prior_term(model, framed), []
        for seed in range(reps):
            draws = corrupt(model, framed, samples, seed)  # its rows are redrawn below at independent times
            generator = torch.Generator().manual_seed(10_000 + seed)
            noise = Noise(torch.rand(samples, generator=generator, dtype=torch.float64),
                          torch.rand(samples, len(framed.ids), generator=generator, dtype=torch.float64),
                          torch.zeros(samples, dtype=torch.int64))  # fmt: skip
            t = times(noise.u)
            sigma = model.schedule.total(t)
            move = (noise.keys < -torch.expm1(-sigma)[:, None]) & draws.where[None]
            rows = torch.where(move, model.mask_id, draws.ids[None])
            value = dse_values(model, draws.ids, draws.where, rows, sigma, model.schedule.rate(t))
            values.append(float(value.mean()) + prior)
        out.append(values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-seconds", type=float, default=300)
    parser.add_argument("--samples", "-n", type=int, default=32)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--records", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine is shared: one thread trains faster than two that wait
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        vocab = write_tokenizer(directory)
        dit, steps, losses = train(vocab, args.train_seconds, args.seed)
        save(dit, len(vocab), directory)
        model = load_model(LoadOptions(str(directory)))
        print(f"trained {steps} steps in {args.train_seconds:.0f} s; loss (mean of the last 200 steps) "
              f"{statistics.fmean(losses[-200:]):.3f} nats; truth log 144 = {TRUTH:.3f}")  # fmt: skip
        texts = random.Random(args.seed).sample(SENTENCES, args.records)
        print(f"{args.records} sentences, -n {args.samples} forward passes per record, {args.reps} seeds each")
        dse = measure(model, texts, Estimator.dse, args.samples, args.reps)
        dse_var = [statistics.variance(values) for values in dse]
        mean = statistics.fmean(v for values in dse for v in values)
        print(f"{'dse':16} mean {mean:7.3f}  per-record var median {statistics.median(dse_var):.4f}")
        runs = [("dse, iid t", measure_iid(model, texts, args.samples, args.reps))]
        runs += [(e.value, measure(model, texts, e, args.samples, args.reps)) for e in ESTIMATORS]
        for name, values in runs:
            variance = [statistics.variance(v) for v in values]
            ratios = [a / b for a, b in zip(dse_var, variance, strict=True)]
            mean = statistics.fmean(v for vs in values for v in vs)
            print(
                f"{name:16} mean {mean:7.3f}  per-record var median {statistics.median(variance):.4f}  "
                f"var(dse)/var = {statistics.median(ratios):6.1f}× (range {min(ratios):.1f}–{max(ratios):.1f})"
            )


if __name__ == "__main__":
    main()
