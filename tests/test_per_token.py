"""--per-token: every token's share of a row's NLL, from the same draws as the NLL."""

from __future__ import annotations

import math
import statistics

import pytest

from itdd_cli.core.windows import Long
from itdd_cli.errors import UsageError
from itdd_cli.estimators import MONTE_CARLO, Estimator
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.results.reader import read_results
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.cli import invoke
from tests.support.fakes import UniformModel
from tests.support.jsonl import read_jsonl, write_jsonl
from tests.support.per_token_reference import per_token_shares

TEXTS = ["a", "dc", "abc", "cadba", "ddcaab", "abcdabc", "dcbadcba"]
CONDITIONALS = [("a", "b"), ("ab", "cd"), ("c", "adbca"), ("dcb", "a")]


@pytest.fixture(scope="module")
def oracle_model(oracle_dir):
    return load_model(LoadOptions(str(oracle_dir), trust_remote_code=True))


def _objects(command: Command) -> list[tuple[int, dict]]:
    if command is Command.nll:
        return [(i + 1, {"id": i, "text": t}) for i, t in enumerate(TEXTS)]
    return [(i + 1, {"id": i, "prompt": p, "response": r}) for i, (p, r) in enumerate(CONDITIONALS)]


def _rows(model, command, **settings):
    return list(score(command, _objects(command), model, Settings(**settings, per_token=True)))


def _assert_shares_sum_to_the_nll(row):
    assert len(row["token_nll"]) == len(row["token_strings"]) == row["tokens"]
    assert math.fsum(row["token_nll"]) == pytest.approx(row["nll"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("command", [Command.nll, Command.cond_nll])
@pytest.mark.parametrize("estimator", [e for e in Estimator if not e.needs_scores])
def test_per_token_shares_sum_to_the_nll_for_every_estimator(oracle_model, command, estimator):
    for row in _rows(oracle_model, command, estimator=estimator, samples=24, seed=3):
        _assert_shares_sum_to_the_nll(row)


@pytest.mark.parametrize("estimator", [Estimator.chain_rule, Estimator.control_variate, Estimator.time_integral])
def test_shares_sum_to_the_nll_across_rounds_of_target_se(oracle_model, estimator):
    rows = _rows(oracle_model, Command.nll, estimator=estimator, samples=8, target_se=1e-3, max_samples=40)
    assert any(row["samples"] > 8 for row in rows)  # some records drew more than one round
    for row in rows:
        _assert_shares_sum_to_the_nll(row)


@pytest.mark.parametrize("estimator", [Estimator.exact, Estimator.control_variate, Estimator.chain_rule])
def test_rolling_windows_give_their_shares_in_token_order(oracle_model, distribution, estimator):
    text = "cadbabcdacbdabca"  # 16 characters: three windows of the oracle's 8 with 3 tokens of context
    objects = [(1, {"text": text})]
    settings = Settings(estimator, 16, seed=5, long=Long.rolling, context=3, per_token=True)
    [row] = score(Command.nll, objects, oracle_model, settings)
    assert row["windows"] == 3
    _assert_shares_sum_to_the_nll(row)
    assert "".join(row["token_strings"]) == text
    if estimator is Estimator.exact:  # each token's share is its own window's exact share
        windows = [("", text[:8]), (text[5:8], text[8:13]), (text[10:13], text[13:])]
        expected = [share for prompt, scored in windows for share in per_token_shares(distribution, prompt, scored)]
        assert row["token_nll"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("command", [Command.nll, Command.cond_nll])
def test_exact_shares_on_the_oracle_are_the_brute_force_decomposition(oracle_model, distribution, command):
    rows = _rows(oracle_model, command, estimator=Estimator.exact)
    pairs = [("", t) for t in TEXTS] if command is Command.nll else CONDITIONALS
    rows, pairs = rows[:6], pairs[:6]  # 8 scored tokens take seconds to enumerate; the rolling test has them
    for row, (prompt, response) in zip(rows, pairs, strict=True):
        assert row["token_strings"] == list(response)
        assert row["token_nll"] == pytest.approx(per_token_shares(distribution, prompt, response), abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", MONTE_CARLO)
def test_monte_carlo_shares_average_to_the_exact_decomposition(oracle_model, distribution, estimator):
    cases = [(Command.nll, "", "cadba"), (Command.cond_nll, "ab", "dca"), (Command.nll, "", "ddcaab")]
    seeds = 100
    for command, prompt, response in cases:
        record = {"prompt": prompt, "response": response} if prompt else {"text": response}
        runs = [next(iter(score(command, [(1, record)], oracle_model, Settings(estimator, 32, seed, per_token=True))))
                for seed in range(seeds)]  # fmt: skip
        truth = per_token_shares(distribution, prompt, response)
        for position, expected in enumerate(truth):
            draws = [run["token_nll"][position] for run in runs]
            se = statistics.stdev(draws) / math.sqrt(seeds)
            assert abs(statistics.mean(draws) - expected) <= 4 * se + 1e-5, (response, position, se)


@pytest.mark.parametrize("estimator", [e for e in Estimator if not e.needs_scores])
def test_per_token_costs_no_pass_and_changes_no_number(estimator):
    objects = [(i + 1, {"text": t}) for i, t in enumerate(["hello world", "ab", "a longer sentence to score"])]
    plain_model, split_model = UniformModel(), UniformModel()
    settings = Settings(estimator, 32, seed=2)
    plain = list(score(Command.nll, objects[:2] if estimator is Estimator.exact else objects, plain_model, settings))
    split = list(score(Command.nll, objects[:2] if estimator is Estimator.exact else objects, split_model,
                       Settings(estimator, 32, seed=2, per_token=True)))  # fmt: skip
    assert sum(split_model.rows_seen) == sum(plain_model.rows_seen)  # forward rows, pilot passes included
    for without, with_shares in zip(plain, split, strict=True):
        assert {k: v for k, v in with_shares.items() if not k.startswith("token_")} == without  # bit for bit
        _assert_shares_sum_to_the_nll(with_shares)


def test_per_token_is_refused_for_commands_that_compare_texts(oracle_model):
    with pytest.raises(UsageError, match="--per-token is for nll and cond-nll"):
        list(score(Command.ratio, [(1, {"chosen": "ab", "rejected": "ba"})], oracle_model, Settings(per_token=True)))


def test_the_cli_writes_shares_as_json_arrays_in_csv_and_reads_them_back(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "r1", "text": "abcd"}, {"id": "r2", "text": "dd"}])
    jsonl = invoke(["nll", source, *base, "--per-token", "--format", "jsonl"])
    assert jsonl.exit_code == 0, jsonl.stderr
    out = tmp_path / "out.csv"
    written = invoke(["nll", source, *base, "--per-token", "-o", out, "-q"])
    assert written.exit_code == 0, written.stderr
    assert read_results(str(out)) == read_jsonl(jsonl.stdout)
    assert '"[""a"", ""b"", ""c"", ""d""]"' in out.read_text()


def test_per_token_refuses_a_table_and_ratio_has_no_such_option(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "abcd"}])
    table = invoke(["nll", source, *base, "--per-token", "--format", "table"])
    assert table.exit_code == 2 and "itdd show" in table.stderr and "Traceback" not in table.stderr
    ratio = invoke(["ratio", source, *base, "--per-token"])
    assert ratio.exit_code == 2 and "--per-token" in ratio.stderr


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_and_compare_work_on_files_with_per_token_fields(base, tmp_path, suffix):
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(["ab", "cdab", "abc", "d"])]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    target = tmp_path / f"out{suffix}"
    assert invoke(["nll", source, *base, "--per-token", "-q", "-o", target]).exit_code == 0
    full = target.read_text()
    lines = full.splitlines()
    target.write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])  # killed mid-write
    resumed = invoke(["nll", source, *base, "--per-token", "-q", "-o", target, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert target.read_text() == full
    mixed = invoke(["nll", source, *base, "-q", "-o", target, "--resume"])
    assert mixed.exit_code == 2 and "per_token" in mixed.stderr  # a file is all per-token or none
    plain = tmp_path / f"plain{suffix}"
    assert invoke(["nll", source, *base, "-q", "-o", plain]).exit_code == 0
    compared = invoke(["compare", plain, target])
    assert compared.exit_code == 0, compared.stderr
    assert "nll_per_token" in compared.stdout


def _byte_level_tokenizer():
    """GPT-2's byte-level scheme without merges: a character of k UTF-8 bytes is k tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab, []))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend)


def test_token_strings_concatenate_to_the_text_and_never_show_half_a_character():
    from itdd_cli.models.text import decoded_pieces, encode_text, token_pieces

    tokenizer = _byte_level_tokenizer()
    text = "café 中 ok"
    ids = encode_text(tokenizer, text)
    assert len(ids) == len(text.encode("utf-8"))  # é is two tokens, 中 three
    pieces = token_pieces(tokenizer, text, ids)
    assert "".join(pieces) == text and "\ufffd" not in "".join(pieces)
    assert pieces[3:5] == ["", "é"] and pieces[6:9] == ["", "", "中"]  # the completing token carries it
    assert decoded_pieces(tokenizer, ids) == pieces  # the fallback without offsets agrees


def test_demo_token_strings_are_the_scored_text(tmp_path):
    records = [{"id": "a", "text": "Tabs\tand\nnewlines, «guillemets» & <b>tags</b>"},
               {"id": "b", "prompt": "The capital of France is ", "response": "Paris"}]  # fmt: skip
    source = write_jsonl(tmp_path / "in.jsonl", records[:1])
    [row] = read_jsonl(invoke(["nll", source, "-m", "demo", "-n", "8", "--per-token", "-q"]).stdout)
    assert "".join(row["token_strings"]) == records[0]["text"]
    source = write_jsonl(tmp_path / "cond.jsonl", records[1:])
    [row] = read_jsonl(invoke(["cond-nll", source, "-m", "demo", "-n", "8", "--per-token", "-q"]).stdout)
    assert "".join(row["token_strings"]) == " Paris"  # the prompt's trailing space starts the response
    _assert_shares_sum_to_the_nll(row)


@pytest.mark.parametrize("estimator", [Estimator.exact, Estimator.control_variate])
def test_block_models_give_their_blocks_shares_in_token_order(tmp_path, estimator):
    from tests.support.block_checkpoints import write_sdar

    model = load_model(LoadOptions(str(write_sdar(tmp_path / "sdar", block_size=4))))
    objects = [(1, {"prompt": "the c", "response": "at sat on"})]  # the prompt ends inside a block
    [row] = score(Command.cond_nll, objects, model, Settings(estimator, 8, per_token=True))
    _assert_shares_sum_to_the_nll(row)
    assert "".join(row["token_strings"]) == "at sat on"


def _z_scores(model, distribution, estimator, samples, seeds):
    """(share − exact share) / its SE for every token of a few oracle records, over seeds."""
    cases = [(Command.nll, "", "cadbadc"), (Command.cond_nll, "ab", "dcabda"), (Command.nll, "", "ddcaabcb")]
    scores = []
    for command, prompt, response in cases:
        record = {"prompt": prompt, "response": response} if prompt else {"text": response}
        truth = per_token_shares(distribution, prompt, response)
        for seed in range(seeds):
            row = next(iter(score(command, [(1, record)], model, Settings(estimator, samples, seed, per_token=True))))
            assert len(row["token_nll_se"]) == row["tokens"] and all(se > 0 for se in row["token_nll_se"])
            scores += [(share - exact) / se for share, exact, se in zip(row["token_nll"], truth, row["token_nll_se"],
                                                                        strict=True)]  # fmt: skip
    return scores


@pytest.mark.parametrize("estimator", [Estimator.control_variate, pytest.param(Estimator.stratified,
                                                                               marks=pytest.mark.slow)])  # fmt: skip
def test_each_tokens_se_is_calibrated_against_the_exact_shares(oracle_model, distribution, estimator):
    """At -n 32; at -n 16 a token masked in few draws can get an SE far too small (|z| over 200 was seen):
    the README calls them rough there."""
    z = sorted(map(abs, _z_scores(oracle_model, distribution, estimator, samples=32, seeds=12)))
    assert len(z) == 12 * (7 + 6 + 8)
    beyond = sum(v > 3 for v in z) / len(z)
    print(f"{estimator.value}: median |z| {z[len(z) // 2]:.2f}, {beyond:.1%} beyond 3 SE")  # the README's numbers
    assert 0.45 <= z[len(z) // 2] <= 0.95, z[len(z) // 2]  # a standard normal's median |z| is 0.674
    assert sum(v > 3 for v in z) <= 0.05 * len(z)


def test_exact_shares_have_zero_se_and_rolling_and_blocks_keep_one_se_per_token(oracle_model):
    for row in _rows(oracle_model, Command.nll, estimator=Estimator.exact):
        assert row["token_nll_se"] == [0.0] * row["tokens"]
    [rolled] = list(score(Command.nll, [(1, {"text": "cadbabcdacbdab"})], oracle_model,
                          Settings(Estimator.stratified, 16, long=Long.rolling, per_token=True)))  # fmt: skip
    assert rolled["windows"] == 2 and len(rolled["token_nll_se"]) == rolled["tokens"] == 14
