"""SEDD checkpoints (absorbing and uniform graphs) and the score-entropy estimator `dse`, against SEDD's
published forward and loss written again in tests/reference_sedd.py, and against exact likelihoods."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from itdd_cli.estimators import Estimator, summarise, variance_groups
from itdd_cli.estimators.dse import Schedule, uniform_prior
from itdd_cli.models import LoadOptions, detect_family, load_model
from itdd_cli.models.base import Framed
from itdd_cli.models.loading import read_config
from itdd_cli.scoring.dse_draws import corrupt, dse_values, prior_term
from tests.support.cli import invoke, one_error_line
from tests.support.family_checkpoints import write_gpt2_like_tokenizer, write_mdlm, write_sedd
from tests.support.jsonl import read_jsonl, write_jsonl
from tests.support.reference_sedd import published_loss, sedd_forward

KINDS = [("absorb", "loglinear"), ("absorb", "geometric"), ("uniform", "geometric"), ("uniform", "loglinear")]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sedd")
    write_gpt2_like_tokenizer(root / "gpt2")
    for graph, noise in KINDS:
        write_sedd(root / f"{graph}-{noise}", graph, noise, seed=len(graph) + len(noise))
    return root


def _load(root, graph, noise):
    return load_model(LoadOptions(str(root / f"{graph}-{noise}"), tokenizer=str(root / "gpt2")))


def _reference(root, graph, noise):
    directory = root / f"{graph}-{noise}"
    return load_file(str(directory / "model.safetensors")), json.loads((directory / "config.json").read_text())


@pytest.mark.parametrize("graph,noise", KINDS)
def test_a_sedd_hydra_config_is_detected_as_sedd(root, graph, noise):
    assert detect_family(read_config(LoadOptions(str(root / f"{graph}-{noise}")))) == "sedd"


@pytest.mark.parametrize("graph,noise", KINDS)
def test_the_scores_equal_the_published_forward(root, graph, noise):
    model = _load(root, graph, noise)
    weights, config = _reference(root, graph, noise)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(model.vocab, (3, 12), generator=g)
    sigma = torch.tensor([1e-3, 0.4, 5.0])
    where = torch.rand(3, 12, generator=g) < 0.5
    expected = sedd_forward(weights, config, ids, sigma)[where]
    assert torch.allclose(model.scores_at(ids, sigma, where), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("graph,noise", KINDS)
def test_each_dse_draw_equals_the_published_loss_on_the_same_draw(root, graph, noise):
    model = _load(root, graph, noise)
    weights, config = _reference(root, graph, noise)
    framed = model.frame([], model.encode("hello world"))
    draws = corrupt(model, framed, 24, seed=5)
    assert torch.equal(draws.rows[:, ~draws.where], draws.ids[~draws.where].expand(24, -1))  # framing never corrupted
    values = dse_values(model, draws.ids, draws.where, draws.rows, draws.sigma, draws.rate)
    batch = draws.ids[None].expand(24, -1)
    expected = published_loss(weights, config, batch, draws.t, draws.rows, scored=draws.where)
    assert torch.allclose(values, expected, rtol=1e-5, atol=1e-5)  # each draw
    assert values.std() > 0  # the draws differ


@pytest.mark.parametrize("graph,noise", KINDS)
def test_the_forward_process_moves_each_scored_position_with_chance_one_minus_exp_minus_sigma(root, graph, noise):
    model = _load(root, graph, noise)
    framed = model.frame([], model.encode("abcdefghijklmnopqrst"))
    draws = corrupt(model, framed, 4000, seed=2)
    changed = (draws.rows != draws.ids[None])[:, draws.where].double()  # (N, L)
    expected = -torch.expm1(-draws.sigma)  # (N,)
    if graph == "uniform":
        expected = expected * (model.vocab - 1) / model.vocab  # a uniform draw may pick the same token
    else:
        assert bool((draws.rows[(draws.rows != draws.ids[None])] == model.mask_id).all())
    per_draw = changed.mean(dim=1) - expected
    assert abs(float(per_draw.mean())) < 4 * float(per_draw.std()) / math.sqrt(4000)


def test_the_uniform_prior_is_the_kl_to_uniform_tokens():
    vocab, sigma = 5, 1.3
    stay = math.exp(-sigma) + (1 - math.exp(-sigma)) / vocab
    other = (1 - math.exp(-sigma)) / vocab
    per_position = stay * math.log(stay / (1 / vocab)) + (vocab - 1) * other * math.log(other / (1 / vocab))
    assert uniform_prior(sigma, vocab, 3) == pytest.approx(3 * per_position, rel=1e-12)


class ExactScores:
    """A SEDD stand-in whose log-scores are the exact ones of a known joint p0 over V^L (L = 2):
    p_σ(x) = Σ_x0 p0(x0) Π_j K_σ(x0_j, x_j), score_y at i = log p_σ(x with i → y) − log p_σ(x)."""

    def __init__(self, graph: str, schedule: Schedule, p0: torch.Tensor) -> None:
        self.absorbing = graph == "absorb"
        self.schedule = schedule
        self.tokens = p0.shape[0]
        self.vocab = self.tokens + self.absorbing
        self.mask_id = self.tokens
        self.p0 = p0.double()

    def kernel(self, sigma: torch.Tensor) -> torch.Tensor:
        """(N, V, V') transition probabilities K_σ(a, b)."""
        stay = torch.exp(-sigma.double())[:, None, None]
        eye = torch.eye(self.tokens, self.vocab, dtype=torch.float64)[None]
        if self.absorbing:
            to_mask = torch.zeros(self.tokens, self.vocab, dtype=torch.float64)
            to_mask[:, self.mask_id] = 1
            return stay * eye + (1 - stay) * to_mask[None]
        return stay * eye + (1 - stay) / self.tokens

    def scores_at(self, ids: torch.Tensor, sigma: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        k = self.kernel(sigma)
        joint = torch.einsum("nav,ab,nbw->nvw", k, self.p0, k)  # (N, V', V') p_σ of every row
        n = torch.arange(ids.shape[0])
        here = joint[n, ids[:, 0], ids[:, 1]]
        first = joint[n, :, ids[:, 1]] / here[:, None]  # position 0 moved to each y
        second = joint[n, ids[:, 0], :] / here[:, None]
        score = torch.stack([first, second], dim=1).clamp_min(1e-30).log().float()  # (N, 2, V')
        return score[where]


P0 = torch.tensor([[0.30, 0.05, 0.10], [0.02, 0.25, 0.08], [0.10, 0.05, 0.05]])


@pytest.mark.parametrize("graph,noise", KINDS)
@pytest.mark.parametrize("x", [(0, 0), (2, 1)])
def test_with_the_exact_score_the_dse_estimate_is_the_true_nll_within_4_se(graph, noise, x):
    schedule = Schedule(noise) if noise == "loglinear" else Schedule(noise, sigma_min=1e-4, sigma_max=20.0)
    model = ExactScores(graph, schedule, P0)
    framed = Framed(ids=list(x), start=0, length=2)
    draws = corrupt(model, framed, 6000, seed=3)
    values = dse_values(model, draws.ids, draws.where, draws.rows, draws.sigma, draws.rate)
    estimate = summarise(values, variance_groups(draws.strata, 4))
    truth = -math.log(float(P0[x]))
    total = estimate.value + prior_term(model, framed)
    assert abs(total - truth) < 4 * estimate.se, (total, truth, estimate.se)
    assert estimate.se < 0.15 * truth  # a real test: the error bar is tight enough to see a wrong integrand


@pytest.mark.parametrize("graph,noise", KINDS)
def test_the_exact_score_check_tells_another_distribution_apart(graph, noise):
    """The check has power: the exact score of a uniform p0 is 4 SE away from −log P0(x)."""
    schedule = Schedule(noise) if noise == "loglinear" else Schedule(noise, sigma_min=1e-4, sigma_max=20.0)
    model = ExactScores(graph, schedule, torch.full((3, 3), 1 / 9))
    framed = Framed(ids=[2, 1], start=0, length=2)
    draws = corrupt(model, framed, 6000, seed=3)
    values = dse_values(model, draws.ids, draws.where, draws.rows, draws.sigma, draws.rate)
    estimate = summarise(values, variance_groups(draws.strata, 4))
    total = estimate.value + prior_term(model, framed)
    assert abs(total - math.log(9)) < 4 * estimate.se  # its own truth
    assert abs(total + math.log(float(P0[2, 1]))) > 4 * estimate.se  # not P0's


@pytest.mark.parametrize("graph,noise", [("absorb", "loglinear"), ("uniform", "geometric")])
def test_nll_with_dse_through_the_cli_equals_the_published_loss_plus_the_prior(root, tmp_path, graph, noise):
    text = "hello world"
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": text}])
    result = invoke(["nll", source, "-m", root / f"{graph}-{noise}", "--tokenizer", root / "gpt2",
                     "--estimator", "dse", "-n", "16", "--seed", "4"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (row,) = read_jsonl(result.stdout)
    model = _load(root, graph, noise)
    weights, config = _reference(root, graph, noise)
    framed = model.frame([], model.encode(text))
    draws = corrupt(model, framed, 16, seed=4)
    batch = draws.ids[None].expand(16, -1)
    losses = published_loss(weights, config, batch, draws.t, draws.rows, scored=draws.where)
    top = model.schedule.top
    if graph == "uniform":  # KL(chain end ‖ uniform tokens) per scored position
        vocab = config["tokens"]
        moved = -math.expm1(-top)
        stay, other = 1 - (vocab - 1) * moved / vocab, moved / vocab
        prior = framed.length * (stay * math.log(stay * vocab) + (vocab - 1) * other * math.log(other * vocab))
    else:  # −δ Σ log π(x_i), π the conditional with every scored position masked at σ(1)
        masked = torch.where(draws.where, model.mask_id, draws.ids)[None]
        score = sedd_forward(weights, config, masked, torch.tensor([top], dtype=torch.float32))[0, draws.where]
        logp = torch.log_softmax(score[:, : model.mask_id].double(), dim=-1).gather(1, draws.ids[draws.where][:, None])
        prior = -math.exp(-top) * float(logp.sum())
    assert row["nll"] == pytest.approx(float(losses.mean()) + prior, rel=1e-5)
    assert row["nll_se"] > 0 and row["samples"] == 16 and row["tokens"] == len(text)


def test_absorbing_time_free_conditionals_are_the_renormalised_score_at_the_mask_rate(root):
    model = _load(root, "absorb", "loglinear")
    weights, config = _reference(root, "absorb", "loglinear")
    framed = model.frame([], model.encode("masked words"))
    ids = torch.tensor([framed.ids, framed.ids])
    masks = torch.zeros_like(ids, dtype=torch.bool)
    masks[0, 1:4] = True
    masks[1, 1:13] = True
    inputs = torch.where(masks, model.mask_id, ids)
    got = model.target_logprobs(inputs, torch.ones_like(ids), masks, ids)
    rate = masks.double().mean(dim=1)
    sigma = -torch.log1p(-rate)
    score = sedd_forward(weights, config, inputs, sigma.float())  # exp(score)·(e^σ − 1), renormalised
    probs = score[..., : model.mask_id].double().exp() * torch.expm1(sigma)[:, None, None]
    probs = probs / probs.sum(dim=-1, keepdim=True)
    expected = probs.log().gather(-1, ids[..., None]).squeeze(-1)[masks]
    assert torch.allclose(got.double(), expected, atol=2e-5)


def test_absorbing_sedd_scores_with_the_time_free_estimators_through_the_cli(root, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello there"}, {"text": "ab"}])
    for estimator in ("control-variate", "stratified"):
        result = invoke(["nll", source, "-m", root / "absorb-loglinear", "--tokenizer", root / "gpt2",
                         "--estimator", estimator, "-n", "8"])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert "(sedd, float32 on cpu)" in result.stderr
        assert all(math.isfinite(row["nll"]) for row in read_jsonl(result.stdout))


def test_uniform_sedd_refuses_the_time_free_estimators_in_one_line(root, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello"}])
    result = invoke(["nll", source, "-m", root / "uniform-geometric", "--tokenizer", root / "gpt2"])
    assert result.exit_code == 2
    assert "uniform-graph SEDD" in result.stderr and "--estimator dse" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_dse_is_refused_for_other_families_and_for_paired_commands(root, tmp_path):
    mdlm = write_mdlm(tmp_path / "mdlm")
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello"}])
    result = invoke(["nll", source, "-m", mdlm, "--tokenizer", root / "gpt2", "--estimator", "dse"])
    assert result.exit_code == 2 and "score-entropy (SEDD)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": " a", "rejected": " b"}])
    result = invoke(["ratio", pairs, "-m", root / "absorb-loglinear", "--tokenizer", root / "gpt2",
                     "--estimator", "dse"])  # fmt: skip
    assert result.exit_code == 2 and "--estimator dse scores nll and cond-nll" in result.stderr


def test_cond_nll_with_dse_corrupts_only_the_response(root, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "question", "response": " answer"}])
    result = invoke(["cond-nll", source, "-m", root / "uniform-loglinear", "--tokenizer", root / "gpt2",
                     "--estimator", "dse", "-n", "8"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (row,) = read_jsonl(result.stdout)
    assert row["tokens"] == len(" answer") and math.isfinite(row["nll"])


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_strict_loading_names_the_offending_tensor(root, tmp_path, change):
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "config.json").write_text((root / "absorb-loglinear" / "config.json").read_text())
    weights = load_file(str(root / "absorb-loglinear" / "model.safetensors"))
    name = {"extra": "blocks.9.attn_out.weight", "missing": "blocks.1.mlp.0.bias", "shape": "output_layer.linear.bias"}
    if change == "extra":
        weights[name[change]] = torch.zeros(2)
    elif change == "missing":
        del weights[name[change]]
    else:
        weights[name[change]] = torch.zeros(3)
    save_file(weights, str(directory / "model.safetensors"))
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello"}])
    result = invoke(["nll", source, "-m", directory, "--tokenizer", root / "gpt2", "--estimator", "dse"])
    assert result.exit_code != 0 and name[change] in result.stderr and "Traceback" not in result.stderr


def test_pickle_weights_load_as_tensors_only_under_allow_pickle(root, tmp_path):
    directory = write_sedd(tmp_path / "pickled", "absorb", "loglinear", seed=len("absorb") + len("loglinear"),
                           pickle=True)  # fmt: skip
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello"}])
    args = ["nll", source, "-m", directory, "--tokenizer", root / "gpt2", "--estimator", "dse", "-n", "8"]
    refused = invoke(args)
    assert refused.exit_code != 0 and "--allow-pickle" in refused.stderr
    same = invoke(["nll", source, "-m", root / "absorb-loglinear", "--tokenizer", root / "gpt2", "--estimator", "dse",
                   "-n", "8"])  # fmt: skip
    loaded = invoke([*args, "--allow-pickle"])
    assert loaded.exit_code == 0, loaded.stderr
    assert read_jsonl(loaded.stdout)[0]["nll"] == read_jsonl(same.stdout)[0]["nll"]


@pytest.mark.parametrize("bad,message", [
    ({"graph": {"type": "star"}}, "graph.type 'star'"),
    ({"noise": {"type": "cosine"}}, "noise.type 'cosine'"),
    ({"tokens": "many"}, "'tokens'"),
])  # fmt: skip
def test_a_bad_sedd_config_is_refused_by_name(root, tmp_path, bad, message):
    directory = tmp_path / "bad"
    directory.mkdir()
    config = json.loads((root / "absorb-loglinear" / "config.json").read_text()) | bad
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes((root / "absorb-loglinear" / "model.safetensors").read_bytes())
    result = invoke(["inspect", "-m", directory, "--tokenizer", root / "gpt2"])
    assert result.exit_code != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_dse_is_not_among_the_estimators_every_family_runs():
    from itdd_cli.estimators import MONTE_CARLO

    assert Estimator.dse not in MONTE_CARLO and Estimator.dse.needs_scores and Estimator.dse.monte_carlo
    assert [e for e in Estimator if e.needs_scores] == [Estimator.dse]


def test_lm_eval_refuses_dse_before_loading_a_model():
    from itdd_cli.errors import UsageError
    from itdd_cli.harness.lm_eval_args import parse_model_args

    with pytest.raises(UsageError, match="estimator=dse is not supported under lm-eval"):
        parse_model_args({"pretrained": "no/such-model", "estimator": "dse"})


@pytest.mark.parametrize("estimator", ["dse", "control-variate"])
def test_cfg_is_refused_on_sedd_models_rather_than_ignored(root, tmp_path, estimator):
    """dse reads scores on corrupted rows and SEDD's conditionals have no unconditional twin: --cfg would be
    recorded but not applied (a guided label on a plain number), or crash; it is refused before scoring."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "ab", "response": " cd"}])
    result = invoke(["cond-nll", source, "-m", root / "absorb-loglinear", "--tokenizer", root / "gpt2", "-n", "8",
                     "--estimator", estimator, "--cfg", "1"])  # fmt: skip
    one_error_line(result, 2, "--cfg", "drop --cfg")
