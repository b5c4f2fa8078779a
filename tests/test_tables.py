"""Tables that fit: at 80 columns the least important columns are left out (and named once),
never a number or an id cut; wide terminals show everything. Golden files in tests/golden/."""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path

import pytest
from rich.console import Console

from itdd_cli.bundled import DESCRIPTIONS
from itdd_cli.models.registry import FAMILIES
from itdd_cli.results.checkpoints import step_of
from itdd_cli.results.compare import Comparison
from itdd_cli.results.rows import SPECS, Command
from itdd_cli.results.study_lines import CheckpointLine, Study, line_numbers
from itdd_cli.results.summary import Summary
from itdd_cli.views.reporting import TableSink, _cell, _natural_width, fitted, print_comparison, print_families
from itdd_cli.views.study_view import COLUMNS, print_study

GOLDEN = Path(__file__).parent / "golden"

ROWS = {
    Command.ratio: [
        dict(id="held000", log_ratio=12.3456789, log_ratio_se=1.2345678, nll_chosen=-123.456789, nll_rejected=135.8,
             tokens_chosen=31, tokens_rejected=31, samples=128, prefers="chosen", decided=None),
        dict(id="a-rather-long-record-id-0001", log_ratio=-0.0123, log_ratio_se=0.5, nll_chosen=1234.5678,
             nll_rejected=1234.5555, tokens_chosen=512, tokens_rejected=498, samples=128, prefers="rejected",
             decided=None),
    ],
    Command.nll: [
        dict(id="s0", nll=185.8154321, nll_se=1.6934, tokens=37, nll_per_token=5.02203, bits_per_token=7.2453,
             ppl=151.7202, samples=128, windows=1, bytes=156, words=29, bits_per_byte=1.718418),
        dict(id=2, nll=12345.678901, nll_se=123.4567, tokens=4096, nll_per_token=3.0141, bits_per_token=4.3485,
             ppl=float("inf"), samples=128, windows=73, bytes=17412, words=2894, bits_per_byte=1.0228813),
    ],
    Command.cond_nll: [
        dict(id="q1", nll=18.5, nll_se=0.16934, tokens=7, prompt_tokens=12, nll_per_token=2.642857,
             bits_per_token=3.8129, ppl=14.05, samples=128, bytes=31, words=6, bits_per_byte=0.8609826),
    ],
    Command.choice: [  # three choices: the wide list columns leave room for some of the rest at 120
        dict(id="q0", pred=1, pred_norm=1, label=1, logliks=[-81.0103, -41.7953, -66.0047], logliks_se=[1.2, 0.9, 1.1],
             margin=24.2094, margin_se=1.5345, tokens=[12, 14, 13], bytes=[48, 55, 51], correct=True,
             correct_norm=True, samples=8, decided=None, passes=24),
        dict(id="q1", pred=2, pred_norm=0, label=0, logliks=[-75.6344, -59.2331, -49.3889], logliks_se=[2.1, 1.7, 0.8],
             margin=8.1558, margin_se=2.2928, tokens=[9, 10, 9], bytes=[35, 41, 36], correct=False,
             correct_norm=True, samples=8, decided=None, passes=24),
    ],
}  # fmt: skip
EIGHT = [-61.1, -52.35, -70.0125, -58.5, -66.25, -71.875, -49.0625, -64.5]
ROWS_8 = [dict(id="m1", pred=6, pred_norm=6, label=2, logliks=EIGHT, logliks_se=[1.5] * 8, margin=3.2875,
               margin_se=1.25, tokens=[40] * 8, bytes=[16] * 8, correct=False, correct_norm=False, samples=8,
               decided=None, passes=64)]  # fmt: skip


def render(command: Command, width: int, rows: list[dict] | None = None) -> str:
    buffer = io.StringIO()
    sink = TableSink(Console(file=buffer, width=width, color_system=None, highlight=False), command)
    for row in ROWS[command] if rows is None else rows:
        sink.write(SPECS[command].row(**row))
    sink.close()
    return buffer.getvalue()


def check_golden(name: str, text: str) -> None:
    """ITDD_UPDATE_GOLDEN=1 rewrites the file (after a deliberate change: review the diff)."""
    if os.environ.get("ITDD_UPDATE_GOLDEN"):
        (GOLDEN / name).write_text(text, encoding="utf-8")
    assert text == (GOLDEN / name).read_text(encoding="utf-8"), f"{name} changed:\n{text}"


def check_fits(command: Command, width: int, text: str, rows: list[dict]) -> list[str]:
    """Every line fits, every value shown is whole; the left-out columns are named once, below the
    table, in at most two lines; a left-out rank is one that does not fit beside the columns shown.
    Returns the columns shown."""
    assert all(len(line) <= width for line in text.splitlines())
    assert "…" not in text
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    shown = [name for name in SPECS[command].names if re.search(rf"\b{name}\b", header)]
    empty = {name for name in SPECS[command].names if all(row.get(name) is None for row in rows)}  # not columns
    left_out = [name for name in SPECS[command].names if name not in shown and name not in empty]
    for row in rows:
        for name in shown:
            assert _cell(row[name]) in text  # whole, on one line
    if not left_out:
        assert "left out" not in text
        return shown
    note = text.split("┘")[-1]  # after the table
    assert text.count("left out to fit") == 1 and "left out to fit" in note
    assert len(note.strip().splitlines()) <= 2
    assert " ".join(note.split()) == f"left out to fit {width} columns: {', '.join(left_out)} (jsonl/csv have all)"
    ranks = {field.name: field.rank for field in SPECS[command].fields}
    assert all(ranks[name] > 1 for name in left_out)
    sink = TableSink(Console(width=width, color_system=None), command)
    sink.rows = [SPECS[command].row(**row) for row in rows]
    for rank in {ranks[name] for name in left_out}:
        wider = [name for name in SPECS[command].names if name in shown or ranks[name] == rank]
        assert _natural_width(sink.console, sink._table(wider)) > width, f"rank {rank} would fit"
    return shown


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("command", list(ROWS))
def test_a_result_table_fits_the_terminal_and_never_cuts_a_value(command, width):
    text = render(command, width)
    check_golden(f"{command.value}-{width}.txt", text)
    check_fits(command, width, text, ROWS[command])


def test_a_choice_table_keeps_every_narrow_column_beside_eight_choices():
    """8 logliks are too wide for 80 columns; the margin and its SE (a pair) and the per-byte
    answers still fit, so they stay."""
    text = render(Command.choice, 80, ROWS_8)
    check_golden("choice8-80.txt", text)
    shown = check_fits(Command.choice, 80, text, ROWS_8)
    assert shown == ["id", "pred", "pred_norm", "label", "margin", "margin_se", "correct", "correct_norm"]


def test_a_column_left_out_comes_back_when_the_room_is_there():
    shown = check_fits(Command.choice, 120, render(Command.choice, 120), ROWS[Command.choice])
    assert "tokens" in shown and "logliks" in shown  # tokens (rank 6) fits although logliks_se (5) does not


def test_a_wide_terminal_shows_every_column():
    for command in ROWS:
        assert "left out" not in render(command, 180)


def test_only_the_rank_1_columns_stay_when_nothing_else_fits():
    text = render(Command.ratio, 40)
    assert "a-rather-long-record-id-0001" in text and "-0.0123" in text and "rejected" in text
    assert "nll_chosen" not in text.split("left out")[0]


@pytest.mark.parametrize("width", [80, 120])
def test_models_shows_every_hub_id_whole(width):
    buffer = io.StringIO()
    print_families(Console(file=buffer, width=width, color_system=None, highlight=False), FAMILIES, DESCRIPTIONS)
    text = buffer.getvalue()
    check_golden(f"models-{width}.txt", text)
    assert all(len(line) <= width for line in text.splitlines())
    for family in FAMILIES.values():
        for hub_id in family.examples:
            assert hub_id in text


COMPARISONS = {
    "t": Comparison("nll_per_token", paired=2, only_base=3, only_new=1, mean_base=5.47734, mean_new=5.4559,
                    difference=-0.0214417, se=0.164, df=1),
    "normal": Comparison("bits_per_byte", paired=1, only_base=0, only_new=0, mean_base=1.25, mean_new=1.5,
                         difference=0.25, se=0.0625, df=math.inf),
    "no-se": Comparison("nll_per_token", paired=1, only_base=0, only_new=0, mean_base=2.0, mean_new=2.5,
                        difference=0.5, se=None, df=math.inf),
}  # fmt: skip


def render_comparison(comparison: Comparison, width: int, terminal: bool = True) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False, soft_wrap=True,
                      force_terminal=terminal)  # fmt: skip
    print_comparison(console, comparison)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 120])
def test_the_compare_report_fits_the_terminal_breaking_only_between_fields(width):
    text = "".join(f"== {name}\n" + render_comparison(c, width) for name, c in COMPARISONS.items())
    check_golden(f"compare-{width}.txt", text)
    assert all(len(line) <= width for line in text.splitlines())
    for comparison in COMPARISONS.values():
        fitted_words = render_comparison(comparison, width).split()
        whole = render_comparison(comparison, width, terminal=False)
        assert fitted_words == whole.split()  # the same words and numbers, none split
        assert len(whole.splitlines()) == 3  # a file or pipe keeps one line per statement
    assert "5 % critical 12.706," in text  # a field is never broken


def test_fitted_breaks_between_fields_only():
    assert fitted(["aaaa", "bbbb", "cc"], 9) == ["aaaa bbbb", "  cc"]
    assert fitted(["a-very-long-field", "b"], 5) == ["a-very-long-field", "  b"]
    assert fitted(["x", "y"], None, " · ") == ["x · y"]


def _study(names: list[str]) -> Study:
    """Checkpoints whose per-record NLLs are known: the table's numbers are the tallies' own."""
    study = Study()
    for index, name in enumerate(names):
        line = CheckpointLine(name, step_of(name), Summary(Command.nll), coupled=index != 1)
        line.summary.records = 3
        study.lines.append(line)
        for record, (nll, tokens, size) in enumerate([(350.0, 60, 240), (1290.5, 200, 800), (12.25, 2, 9)]):
            study.add(line, {"id": f"r{record}", "nll": nll * (1 + 0.01 * index) + record, "tokens": tokens,
                             "bytes": size})  # fmt: skip
    return study


STUDY = ["run/checkpoint-500", "run/checkpoint-1000", "a-much-longer-run-name/checkpoint-20000"]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_checkpoint_table_never_cuts_a_number_or_a_name(width):
    study = _study(STUDY)
    buffer = io.StringIO()
    print_study(Console(file=buffer, width=width, color_system=None, highlight=False, force_terminal=True), study)
    text = buffer.getvalue()
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())
    for line in study.lines:
        numbers = line_numbers(line)
        assert line.name in text and f"{numbers['bits_per_byte']:.4f} ± {numbers['bits_per_byte_se']:.4f}" in text
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    shown = [name for name in COLUMNS if name in header]
    assert {"checkpoint", "bits/byte ± SE", "Δ bits/byte"} <= set(shown)
    if len(shown) < len(COLUMNS):
        left_out = ", ".join(name for name in COLUMNS if name not in shown)
        assert f"left out to fit {width} columns: {left_out} (--summary has every column)" in " ".join(text.split())
    else:
        assert "left out" not in text
    assert width < 200 or len(shown) == len(COLUMNS)


def test_the_checkpoint_table_in_a_file_has_every_column_whole():
    buffer = io.StringIO()
    print_study(Console(file=buffer, width=80, color_system=None), _study(STUDY))
    header = next(line for line in buffer.getvalue().splitlines() if line.startswith("┃"))
    assert all(name in header for name in COLUMNS) and "…" not in buffer.getvalue()


def test_a_checkpoint_name_with_escapes_is_shown_escaped():
    buffer = io.StringIO()
    print_study(Console(file=buffer, width=200, color_system=None), _study(["a\x1b[2J", "b\u202e", "[b]c[/]"]))
    text = buffer.getvalue()
    assert "\x1b" not in text and "\u202e" not in text and "a\\x1b[2J" in text and "b\\u202e" in text
    assert "│ [b]c[/] " in text


def test_a_result_table_shows_an_id_with_escapes_escaped_and_brackets_as_written():
    row = dict(ROWS[Command.nll][0], id="\x1b]0;owned\x07\u202eid")
    text = render(Command.nll, 160, [row])
    assert not any(raw in text for raw in ("\x1b", "\x07", "\u202e")) and "\\x1b]0;owned\\x07\\u202eid" in text
    text = render(Command.nll, 160, [dict(ROWS[Command.nll][0], id="[red]x[/red] [/]")])  # rich markup: not read
    assert "│ [red]x[/red] [/] │" in text
