"""Block-diffusion models under every command and option (issue #24): --target-se and --until-decided
rounds over blocks, `choice` and lm-eval multiple choice, `--long rolling` on the block grid.

Truths come from the independent reference forward (tests/reference_block.py), every mask of every block
enumerated (`brute_force_nll`): a block record's NLL is Σ over blocks of each block's exact sum.
"""

from __future__ import annotations

import math
import statistics

import pytest

from itdd_cli.core.windows import Grid, Long, Window, block_windows
from itdd_cli.estimators import MONTE_CARLO, Estimator, round_shape
from itdd_cli.io.records import Fields
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.results.rows import SPECS
from itdd_cli.scoring.blocks import BlockDraws
from itdd_cli.scoring.draws import run_rounds
from itdd_cli.scoring.engine import Engine
from itdd_cli.scoring.runner import Command, Settings, prepare, score
from tests.support.block_checkpoints import rewrite_config, write_fast_dllm_v2, write_sdar
from tests.support.cli import invoke
from tests.support.jsonl import read_jsonl, write_jsonl
from tests.test_block_families import brute_force_nll, weights

BLOCK = 4  # SDAR's block size in its config.json


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("block-everywhere")
    small = write_sdar(root / "sdar-12")
    rewrite_config(small, max_position_embeddings=12)  # a 12-position window: long texts roll
    return {"sdar": write_sdar(root / "sdar"), "sdar-12": small, "fast-dllm-v2": write_fast_dllm_v2(root / "fast")}


@pytest.fixture(scope="module")
def sdar(checkpoints):
    return load_model(LoadOptions(str(checkpoints["sdar"])))


def exact_nll(checkpoints, model, prompt: str, text: str) -> float:
    """Σ over blocks of every mask's loss on the reference forward: the record's true NLL."""
    framed = model.frame(model.encode(prompt), model.encode(text))
    return brute_force_nll(weights(checkpoints, "sdar"), "sdar", framed.ids, framed.start, framed.length, BLOCK,
                           model.info.mask_id)  # fmt: skip


def _rows(command, model, records, **settings):
    return list(score(command, enumerate(records, 1), model, Settings(**settings)))


def _drawn(model, command, record, settings) -> BlockDraws:
    """A record's BlockDraws after its rounds, as the runner runs them."""
    prepared = prepare(model, SPECS[command].parse(record, 1, Fields()), settings)
    [item] = run_rounds(Engine(model), iter([prepared]), lambda item: item.draws, settings.adaptive)
    assert isinstance(item.draws, BlockDraws)
    return item.draws


# A prompt of one block, then three 4-token blocks: 15 masked sets each, more than -n 8 enumerates.
PROMPT, TEXT = "abcd", "quietzebrasa"


@pytest.fixture(scope="module")
def truth(checkpoints, sdar):
    return exact_nll(checkpoints, sdar, PROMPT, TEXT)


def test_the_exact_estimator_gives_the_reference_sum(sdar, truth):
    [row] = _rows(Command.cond_nll, sdar, [{"prompt": PROMPT, "response": TEXT}], estimator=Estimator.exact)
    assert row["nll"] == pytest.approx(truth, rel=1e-5) and row["nll_se"] == 0


@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_target_se_rounds_reach_the_goal_or_every_block_spends_the_cap(sdar, truth, estimator):
    record = {"prompt": PROMPT, "response": TEXT}
    settings = Settings(estimator, 8, seed=1, target_se=0.15, max_samples=96)
    draws = _drawn(sdar, Command.cond_nll, record, settings)
    estimate = draws.estimates()[0]
    per_block = [block.passes for _, block in draws.blocks]
    assert draws.round > 0 and max(per_block) > 8  # rounds really ran
    assert estimate.se <= 0.15 or (draws.capped and max(per_block) == 96), (estimate, per_block)
    assert max(per_block) <= 96 and len(set(per_block)) == 1  # every block drew alike, none past the cap
    assert estimate.se == pytest.approx(math.sqrt(sum(block.estimates()[0].se ** 2 for _, block in draws.blocks)))
    assert abs(estimate.value - truth) < 4 * estimate.se
    [row] = _rows(Command.cond_nll, sdar, [record], estimator=estimator, samples=8, seed=1, target_se=0.15,
                  max_samples=96)  # fmt: skip
    assert (row["nll"], row["nll_se"], row["samples"]) == (estimate.value, estimate.se, draws.passes)


def test_an_enumerated_block_stops_while_the_others_draw_on(checkpoints, sdar):
    """After "a", block 0 holds 3 scored tokens (7 masked sets: enumerated at -n 8) and blocks 1 and 2
    four each (drawn): later rounds run rows from block 1 on, and the sum stays near the truth."""
    record = {"prompt": "a", "response": "bcdquietzeb"}
    draws = _drawn(sdar, Command.cond_nll, record, Settings(Estimator.stratified, 8, target_se=0.1, max_samples=64))
    first, *drawn = [block for _, block in draws.blocks]
    assert first.tallies[0].exact and first.passes == 7 and first.round == 0
    assert all(block.round == draws.round > 0 and block.passes > 8 for block in drawn)
    estimate = draws.estimates()[0]
    assert abs(estimate.value - exact_nll(checkpoints, sdar, "a", "bcdquietzeb")) < 4 * estimate.se
    enumerated = _drawn(sdar, Command.cond_nll, {"prompt": "abcd", "response": "ab"},
                        Settings(Estimator.stratified, 8, target_se=1e-9, max_samples=64))  # fmt: skip
    assert enumerated.round == 0 and enumerated.passes == 3 and enumerated.estimates()[0].se == 0


def test_the_chain_rule_draws_single_steps_on_a_block_until_16_whole_orders_fit(sdar):
    """A 4-token block at -n 8 would be 2 whole orders (3 at -n 12), an SE of one degree of freedom each
    order less one: it draws single steps (strata joined, the SE scaled for few degrees of freedom). From
    -n 15 the block's 15 masked sets are enumerated; a longer block draws whole orders once 16 fit. A plain
    record draws whole orders from 4 (tests/test_chain_rule_orders.py)."""
    record = {"prompt": PROMPT, "response": TEXT}
    for samples in (8, 12):
        draws = _drawn(sdar, Command.cond_nll, record, Settings(Estimator.chain_rule, samples, seed=1))
        for _, block in draws.blocks:
            assert not block.tallies[0].orders and not block.tallies[0].exact and block.passes == samples
            assert block.estimates()[0].se > 0
    for passes, length, orders in [(8, 4, False), (16, 4, True), (127, 8, True), (128, 32, True), (48, 3, True),
                                   (96, 32, False)]:  # fmt: skip
        assert round_shape(Estimator.chain_rule, passes, [length], first=False).orders is orders  # plain
        fewest = round_shape(Estimator.chain_rule, passes, [length], first=False, min_orders=16)
        assert fewest.orders is (passes // length >= 16)
        assert fewest.draws == (passes // length if fewest.orders else passes)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_the_se_of_a_block_sum_covers_the_truth_over_seeds_at_the_smallest_n(sdar, truth, estimator):
    """200 seeds at -n 8: error / SE rarely passes 3 and its spread is at most 1.25 (as test_calibration
    asks of plain records), so Σ of per-block variances is not too small. Measured rms z: control-variate and
    stratified 0.58, time-free 0.49, time-integral 0.77, chain-rule 0.81 (single steps;
    2 whole orders a block gave 2.42 and 11 %): a 4-token block's SE at -n 8
    is cautious (small rounds join strata for the SE), and the sum inherits it."""
    record = [{"prompt": PROMPT, "response": TEXT}]
    scores = []
    for seed in range(200):
        [row] = _rows(Command.cond_nll, sdar, record, estimator=estimator, samples=8, seed=seed)
        assert row["nll_se"] > 0
        scores.append((row["nll"] - truth) / row["nll_se"])
    spread = math.sqrt(statistics.fmean(z * z for z in scores))
    beyond = sum(abs(z) > 3 for z in scores) / len(scores)
    print(f"block sum {estimator.value} -n 8: rms z {spread:.2f}, |z| > 3 for {beyond:.1%} of {len(scores)}")
    assert 0.4 <= spread <= 1.25 and beyond <= 0.03, (spread, beyond)


# --- choice ------------------------------------------------------------------------------------------

CHOICES = {"prompt": "abcd", "choices": ["quietzeb", "quietzebrasa", "quietzeb", "zzzz"], "label": 1}


def test_choice_with_exact_gives_each_choice_its_reference_sum(checkpoints, sdar):
    """Choices of one and two blocks, one a copy: logliks are −Σ over blocks, the pick is their argmax."""
    [row] = _rows(Command.choice, sdar, [CHOICES], estimator=Estimator.exact)
    truths = [-exact_nll(checkpoints, sdar, CHOICES["prompt"], text) for text in CHOICES["choices"]]
    assert row["logliks"] == pytest.approx(truths, rel=1e-5)
    assert row["pred"] == truths.index(max(truths)) and row["margin_se"] == 0
    ordered = sorted(truths, reverse=True)
    assert row["margin"] == pytest.approx(ordered[0] - ordered[1], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("estimator", [Estimator.control_variate, Estimator.stratified])
def test_choice_margins_are_paired_block_sums_and_cover_the_exact_margin(checkpoints, sdar, estimator):
    record = {"prompt": "abcd", "choices": ["quietzeb", "quietzab"]}  # one letter apart: coupled draws
    truths = [-exact_nll(checkpoints, sdar, "abcd", text) for text in record["choices"]]
    [row] = _rows(Command.choice, sdar, [record], estimator=estimator, samples=8, seed=2)
    best, second = (0, 1) if row["pred"] == 0 else (1, 0)
    assert abs(row["margin"] - (truths[best] - truths[second])) < 4 * row["margin_se"]
    # the pair as a ratio draws the same masks: its log ratio is the margin (signed), its SE the margin's
    [ratio] = _rows(Command.ratio, sdar, [{"prompt": "abcd", "chosen": "quietzeb", "rejected": "quietzab"}],
                    estimator=estimator, samples=8, seed=2)  # fmt: skip
    assert ratio["log_ratio"] == pytest.approx(row["margin"] * (1 if best == 0 else -1))
    assert ratio["log_ratio_se"] == pytest.approx(row["margin_se"])
    # paired: far below the SE two independent sums would have
    assert row["margin_se"] < 0.8 * math.hypot(*row["logliks_se"])


def test_identical_choices_tie_to_the_first_with_a_margin_of_zero(sdar):
    record = {"prompt": "ab", "choices": ["cdquiet", "cdquiet"]}
    [row] = _rows(Command.choice, sdar, [record], samples=8)
    assert row["logliks"][0] == row["logliks"][1] and row["pred"] == 0
    assert row["margin"] == 0 and row["margin_se"] == 0


def test_choice_runs_on_a_block_model_through_the_cli(checkpoints, sdar, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [CHOICES])
    result = invoke(["choice", str(path), "-m", str(checkpoints["sdar"]), "--estimator", "exact"])
    assert result.exit_code == 0, result.stderr
    [row] = read_jsonl(result.stdout)
    [api] = _rows(Command.choice, sdar, [CHOICES], estimator=Estimator.exact)
    assert row["logliks"] == api["logliks"] and row["correct"] is (api["pred"] == CHOICES["label"])


# --- --until-decided ---------------------------------------------------------------------------------

def test_until_decided_picks_the_exact_best_and_stops_early_on_a_clear_question(checkpoints, sdar):
    record = {"prompt": "abcd", "choices": ["zzzzqq", "quietzeb", "qqqqzzzzx"]}
    truths = [-exact_nll(checkpoints, sdar, "abcd", text) for text in record["choices"]]
    settings = Settings(Estimator.stratified, 8, seed=0, until_decided=0.01, max_samples=256)
    draws = _drawn(sdar, Command.choice, record, settings)
    [row] = list(score(Command.choice, enumerate([record], 1), sdar, settings))
    assert row["decided"] is True and draws.decided and sum(draws.active) == 1
    assert row["pred"] == truths.index(max(truths))
    assert max(block.passes for _, block in draws.blocks) < 256  # decided before the cap
    assert row["passes"] == draws.forward_rows > 0


def test_until_decided_blocks_draw_one_shape_so_per_draw_sums_line_up(sdar):
    """Two 4-token blocks drawn and a 3-token block enumerated per side, put out of contention or not: the
    drawn blocks' values line up by index (one shared shape), so each side's per-draw sums exist."""
    record = {"prompt": "abcd", "chosen": "quietzebras", "rejected": "zebraquietx"}
    settings = Settings(Estimator.control_variate, 8, seed=4, until_decided=0.05, max_samples=128)
    draws = _drawn(sdar, Command.ratio, record, settings)
    values, strata = draws.per_draw()
    counts = {len(tally.all_values()) for _, block in draws.blocks for tally in block.tallies if not tally.exact}
    assert counts == {len(strata)} and all(len(v) == len(strata) for v in values)
    # each side's per-draw sums average to its block-sum estimate
    for side, estimate in enumerate(draws.estimates()):
        assert float(values[side].mean()) == pytest.approx(estimate.value, rel=1e-9)


@pytest.mark.slow
def test_until_decided_on_close_block_questions_errs_within_its_level(checkpoints, sdar):
    """Pairs whose true NLLs (reference sums) differ by 0.05–1.5 nats, 8 seeds each, α = 0.05: wrong picks
    among decided runs stay within the binomial bound of α; the naive fixed z = 0.5 rule exceeds it.
    Measured (12 pairs × 8 seeds): the rule 0 wrong of 64 decided; fixed z 0.5: 16 wrong of 96."""
    from itdd_cli.estimators.decisions import FixedZ
    from itdd_cli.estimators.tdist import binomial_upper

    letters = "abcdefghijklmnopqrstuvwxyz"
    # the first letter differs: both 4-token blocks are drawn (15 masked sets > -n 8), the second coupled
    candidates = [("abcd", a + "uietzeb", b + "uietzeb") for a in letters[:8] for b in letters[8:16]]
    exact = _rows(Command.ratio, sdar, [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in candidates],
                  estimator=Estimator.exact)  # fmt: skip  # only to pick close pairs; the truth is the reference's
    close = [pair for pair, row in zip(candidates, exact, strict=True) if 0.05 < abs(row["log_ratio"]) < 1.5][:12]
    assert len(close) >= 8
    truths = [exact_nll(checkpoints, sdar, p, r) - exact_nll(checkpoints, sdar, p, c) for p, c, r in close]

    def wrong(rule=None) -> tuple[int, int]:
        errors = decided = 0
        for seed in range(8):
            settings = Settings(Estimator.stratified, 8, seed=seed, until_decided=0.05, max_samples=128)
            records = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in close]
            if rule is None:
                rows = _rows(Command.ratio, sdar, records, **vars(settings))
            else:
                from unittest import mock

                with mock.patch("itdd_cli.scoring.blocks.decision_rule", lambda _: rule):
                    rows = _rows(Command.ratio, sdar, records, **vars(settings))
            for row, truth in zip(rows, truths, strict=True):
                if row["decided"]:
                    decided += 1
                    errors += (row["log_ratio"] > 0) != (truth > 0)
        return errors, decided

    errors, decided = wrong()
    print(f"anytime-valid: {errors} wrong of {decided} decided")
    assert decided > 0 and errors <= binomial_upper(decided, 0.05)
    naive, naive_decided = wrong(FixedZ(0.5))
    print(f"fixed z 0.5: {naive} wrong of {naive_decided} decided")
    assert naive > binomial_upper(naive_decided, 0.05)  # the test can fail


# --- --long rolling ----------------------------------------------------------------------------------

def _spans(windows: list[Window], ids: list[int]) -> list[tuple[int, int, int]]:
    """(context length, first scored index, scored length) per window, checked against `ids`."""
    spans, start = [], 0
    for window in windows:
        assert window.scored == ids[start : start + len(window.scored)]
        assert window.context == ids[start - len(window.context) : start]
        spans.append((len(window.context), start, len(window.scored)))
        start += len(window.scored)
    assert start == len(ids)
    return spans


@pytest.mark.parametrize(
    ("grid", "length", "context", "expected"),
    [
        # SDAR (no framing), 12 positions: 12 scored, then 4 context + 8 scored (--context 5 moves down to 4)
        (Grid(4, 0, 0, 0, 12), 30, 5, [(0, 0, 12), (4, 12, 8), (4, 20, 8), (4, 28, 2)]),
        # Fast-dLLM v2: a lone text after a BOS (position 1), a text after context at 0: 3 context tokens put
        # the text's position 12 (a boundary) at window position 3 — with --context 0 too (up, < one block)
        (Grid(3, 1, 0, 0, 12), 25, 4, [(0, 0, 11), (3, 11, 9), (3, 20, 5)]),
        (Grid(3, 1, 0, 0, 12), 25, 0, [(0, 0, 11), (3, 11, 9), (3, 20, 5)]),
        # BD3-LM: BOS before and EOS after every window, blocks of 4
        (Grid(4, 1, 1, 1, 12), 20, 0, [(0, 0, 7), (3, 7, 4), (3, 11, 4), (3, 15, 5)]),
    ],
)
def test_block_windows_score_whole_blocks_of_the_whole_text_on_each_windows_grid(grid, length, context, expected):
    ids = list(range(100, 100 + length))
    windows = block_windows(ids, grid, context)
    assert _spans(windows, ids) == expected
    for kept, start, scored in expected:
        first = grid.context_start + kept if kept else grid.lone_start  # where the window puts its text
        assert first % grid.block == (grid.lone_start + start) % grid.block  # same place on the block grid
        assert first + scored + grid.suffix <= grid.limit


def test_a_window_that_cannot_hold_a_block_is_a_usage_error():
    from itdd_cli.errors import UsageError

    with pytest.raises(UsageError, match="cannot hold a block"):
        block_windows(list(range(40)), Grid(8, 0, 0, 0, 12), 8)


def test_rolling_nll_is_the_sum_of_each_windows_reference_sums(checkpoints):
    """A 30-letter text through a 12-position SDAR: windows as listed above, each window's blocks scored on
    its own framed ids; the reference enumerates every block of every window."""
    model = load_model(LoadOptions(str(checkpoints["sdar-12"])))
    text = "thequietzebrasatonthematandsan"
    ids = model.encode(text)
    assert len(ids) == 30 and model.info.max_length == 12
    [row] = _rows(Command.nll, model, [{"text": text}], estimator=Estimator.exact, long=Long.rolling, context=5)
    expected = 0.0
    for kept, start, scored in [(0, 0, 12), (4, 12, 8), (4, 20, 8), (4, 28, 2)]:
        window = ids[start - kept : start + scored]
        expected += brute_force_nll(weights(checkpoints, "sdar"), "sdar", window, kept, scored, BLOCK,
                                    model.info.mask_id)  # fmt: skip
    assert row["windows"] == 4 and row["tokens"] == 30
    assert row["nll"] == pytest.approx(expected, rel=1e-5) and row["nll_se"] == 0
    [mc] = _rows(Command.nll, model, [{"text": text}], samples=8, long=Long.rolling, context=5)
    assert 0 < mc["nll_se"] and abs(mc["nll"] - expected) < 4 * mc["nll_se"]


# --- lm-eval -----------------------------------------------------------------------------------------

def test_lm_eval_multiple_choice_on_a_block_model_equals_itdd_choice(checkpoints, tmp_path, monkeypatch):
    """The local task through lm-eval on the tiny SDAR checkpoint: the same log-likelihoods, bit for bit, as
    `itdd choice` on the same items (this crashed: `BlockDraws has no tallies`)."""
    lm_eval = pytest.importorskip("lm_eval")
    from pathlib import Path

    from lm_eval.tasks import TaskManager

    from itdd_cli.harness.lm_eval_backend import ItddLM

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the task's data_files path is relative to the repository root
    for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    items = root / "tests" / "lm_eval_task" / "sentences.jsonl"
    result = invoke(["choice", str(items), "-m", str(checkpoints["sdar"]), "-n", "8", "--seed", "3",
                                      "-q"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    lm = ItddLM(pretrained=str(checkpoints["sdar"]), samples=8, seed=3)
    manager = TaskManager(include_path=str(root / "tests" / "lm_eval_task"), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=["itdd_sentences"], task_manager=manager, log_samples=True)
    samples = sorted(out["samples"]["itdd_sentences"], key=lambda sample: sample["doc_id"])
    assert len(samples) == len(rows)
    for sample, row in zip(samples, rows, strict=True):
        assert [resp[0][0] for resp in sample["resps"]] == row["logliks"]
    accuracy = sum(row["correct"] for row in rows) / len(rows)
    assert out["results"]["itdd_sentences"]["acc,none"] == pytest.approx(accuracy)
    # perplexity requests: a document scored as `itdd nll` scores it
    from lm_eval.api.instance import Instance

    text = "the quiet zebra sat on the mat"
    [loglik] = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0, ("probe", 0, 1))])
    [row] = _rows(Command.nll, lm.scorer.model, [{"text": text}], samples=8, seed=3)
    assert loglik == -row["nll"]
