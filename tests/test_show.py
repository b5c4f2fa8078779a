"""`itdd show`: the terminal heat view and the HTML page of --per-token results."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import invoke, one_error_line
from tests.support.jsonl import read_jsonl, write_jsonl

CHROMIUM = Path("/usr/bin/chromium")
RECORDS = [
    {"id": "tags", "text": "<script>alert('x')</script> & \"quotes\" stay text"},
    {"id": "lines", "text": "First line\nsecond line, with a tab\there."},
    {"id": "plain", "text": "The module level should accept one argument."},
]
SPAN = re.compile(r'<span class="(t[^"]*)" style="background:(#[0-9a-f]{6});color:#[0-9a-f]{6}" '
                  r'title="([^"]*)" data-nats="([^"]*)">(.*?)</span>', re.S)  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Rows scored with --per-token by the bundled demo model."""
    directory = tmp_path_factory.mktemp("show")
    source = write_jsonl(directory / "in.jsonl", RECORDS)
    out = directory / "scored.jsonl"
    result = invoke(["nll", source, "-m", "demo", "-n", "8", "--per-token", "-q", "-o", out])
    assert result.exit_code == 0, result.stderr
    return out


def _text(shown: str) -> str:
    """A token's text as the page holds it: escaped, with an empty mark before each line break."""
    return html.unescape(shown.replace('<i class="nl"></i>', ""))


def _rows(path: Path) -> list[dict]:
    return read_jsonl(path.read_text(encoding="utf-8"))


def test_the_terminal_view_shows_the_legend_and_each_rows_worst_tokens(results):
    shown = invoke(["show", results])
    assert shown.exit_code == 0, shown.stderr
    assert "nats per token" in shown.stdout
    for row in _rows(results):
        worst = max(range(row["tokens"]), key=lambda i: row["token_nll"][i])
        assert f"{row['token_strings'][worst]!r} {row['token_nll'][worst]:.2f}" in shown.stdout
        assert f"nll {row['nll']:.3f}" in shown.stdout and str(row["id"]) in shown.stdout


def test_the_terminal_view_is_bounded_and_picks_rows_by_id(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": "abcd"[: 1 + i % 4]} for i in range(25)])
    out = tmp_path / "many.jsonl"
    assert invoke(["nll", source, *base, "--per-token", "-q", "-o", out]).exit_code == 0
    shown = invoke(["show", out])
    assert shown.exit_code == 0 and "showing 20 of 25 rows" in shown.stdout and "r19" in shown.stdout
    assert "r20" not in shown.stdout
    picked = invoke(["show", out, "--id", "r22", "--id", "r3"])
    assert picked.exit_code == 0 and "r22" in picked.stdout and "r3" in picked.stdout and "r4" not in picked.stdout
    assert "showing 2 of 25 rows" in picked.stdout
    missing = invoke(["show", out, "--id", "nope"])
    assert missing.exit_code == 2 and "no row with id 'nope'" in missing.stderr


def test_rows_without_per_token_fields_are_refused_naming_the_file(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "r", "text": "abcd"}])
    out = tmp_path / "plain.jsonl"
    assert invoke(["nll", source, *base, "-q", "-o", out]).exit_code == 0
    refused = invoke(["show", out])
    assert refused.exit_code == 2 and str(out) in refused.stderr and "--per-token" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert invoke(["show", tmp_path / "absent.jsonl"]).exit_code == 2


def _page(results: Path, tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "page.html"
    written = invoke(["show", results, "--html", out])
    assert written.exit_code == 0, written.stderr
    return out, out.read_text(encoding="utf-8")


def test_the_page_shows_every_token_escaped_with_its_nats_on_hover(results, tmp_path):
    _, page = _page(results, tmp_path)
    spans = SPAN.findall(page)
    rows = _rows(results)
    assert [_text(text) for *_, text in spans] == [t for row in rows for t in row["token_strings"]]
    errors = [se for row in rows for se in row["token_nll_se"]]
    for (_, _, title, nats, _), value, se in zip(spans, [n for row in rows for n in row["token_nll"]], errors,
                                                  strict=True):  # fmt: skip
        assert float(nats) == value and f"{value:.4f} ± {se:.4f} nats" in html.unescape(title)
    assert any(se > 0 for se in errors)
    from itdd_cli.version import __version__

    made = re.search(r'<div class="from">made by: <bdi>([^<]*)</bdi></div>', page).group(1)
    assert made.startswith("model ") and "bundled/demo" in made  # `-m demo`, `-n 8`, the default estimator and seed
    assert made.endswith(f" · estimator control-variate · 8 draws · seed 0 · itdd {__version__}")
    assert page.count("<script") == 1 and "&lt;" in page  # the record's <script> is text; the page's own is one
    assert not re.search(r"https?://|<link|@import|\bsrc=|url\(", page)  # nothing from the network
    for row in rows:
        assert f'data-id="{row["id"]}"' in page and f"nll {row['nll']:.3f}" in page
        assert f"{row['bits_per_byte']:.4f} bits/byte" in page


def test_the_page_is_written_once_whole_and_never_over_a_file_without_overwrite(results, tmp_path):
    out, page = _page(results, tmp_path)
    again = invoke(["show", results, "--html", out])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert invoke(["show", results, "--html", out, "--overwrite"]).exit_code == 0
    assert out.read_text(encoding="utf-8") == page
    assert invoke(["show", results, "--html", results]).exit_code == 2  # never over the result file
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]  # no temporary file or lock left


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120)


def _hits(tokens: list[str], query: str) -> list[int]:
    """Indices of the tokens that overlap a case-insensitive match of `query` in the row's text."""
    text = "".join(tokens).lower()
    starts = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    found = set()
    at = text.find(query)
    while at >= 0:
        found |= {i for i, s in enumerate(starts) if s < at + len(query) and s + len(tokens[i]) > at}
        at = text.find(query, at + 1)
    return sorted(found)


@pytest.mark.slow
def test_the_page_in_headless_chromium_shows_every_token_and_searches_from_the_address(results, tmp_path):
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    import matplotlib.image

    out, page = _page(results, tmp_path)
    rows = _rows(results)
    dumped = _chromium(tmp_path, "--dump-dom", f"{out.as_uri()}#q=line")
    assert dumped.returncode == 0, dumped.stderr
    dom = dumped.stdout
    sections = re.findall(r'<section class="row( nohit)?" data-id="([^"]*)">(.*?)</section>', dom, re.S)
    assert [section[1] for section in sections] == [row["id"] for row in rows]
    for (hidden, _, body), row in zip(sections, rows, strict=True):
        spans = SPAN.findall(body.replace(' hit"', '"').replace('class="t hit', 'class="t'))
        assert [_text(text) for *_, text in spans] == row["token_strings"]  # every token in the DOM
        marked = [i for i, span in enumerate(re.findall(r'<span class="(t[^"]*)"', body)) if "hit" in span.split()]
        assert marked == _hits(row["token_strings"], "line")
        assert bool(hidden) == (not marked)
    assert any(_hits(row["token_strings"], "line") for row in rows)

    shot = tmp_path / "page.png"
    taken = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1000", "--hide-scrollbars", out.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    pixels = (matplotlib.image.imread(str(shot))[..., :3] * 255).round().astype(int)  # (H, W, 3)
    spans = SPAN.findall(page)
    hottest = max(spans, key=lambda span: float(span[3]))[1]
    assert hottest == "#a50f15"  # the file's largest share sits at the hot end of the scale
    legend = re.findall(r'<span class="sw" style="background:(#[0-9a-f]{6})', page)
    assert len(legend) == 5
    for colour in {hottest, *legend}:
        rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        painted = (abs(pixels - rgb).max(axis=2) <= 2).sum()
        assert painted >= 100, (colour, painted)  # a swatch or a token's background, not a stray pixel
    assert len({tuple(p) for p in pixels.reshape(-1, 3)[::7]}) > 50  # text and colours, not a blank page


def test_show_imports_neither_torch_nor_transformers(results, tmp_path):
    import sys

    args = ["show", str(results), "--html", str(tmp_path / "p.html")]
    code = ("import sys\nfrom itdd_cli.cli.app import app\n"
            f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]" and (tmp_path / "p.html").exists()


def test_a_long_row_is_cut_in_the_terminal_and_whole_in_the_page(tmp_path):
    tokens = [f" w{i}" for i in range(2100)]
    row = {"id": "long", "nll": 2100.0, "nll_se": 1.0, "tokens": 2100, "token_strings": tokens,
           "token_nll": [1.0] * 2099 + [2.0]}  # fmt: skip
    path = write_jsonl(tmp_path / "long.jsonl", [row])
    shown = invoke(["show", path, "--worst", "1"])
    assert shown.exit_code == 0 and "… 100 more tokens" in shown.stdout and "' w2099' 2.00" in shown.stdout
    assert "w1999 … 100" in shown.stdout and "w2000" not in shown.stdout.replace("' w2099'", "")
    _, page = _page(path, tmp_path)
    assert len(SPAN.findall(page)) == 2100


def _row(id_: str, tokens: list[str], nats: list[float], **more) -> dict:
    return {"id": id_, "nll": sum(nats), "nll_se": 0.5, "tokens": len(tokens), "token_strings": tokens,
            "token_nll": nats, **more}  # fmt: skip


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_share_is_refused_naming_the_file_and_the_row(tmp_path, value):
    path = tmp_path / "odd.jsonl"
    lines = [json.dumps(_row("fine", ["a", "b"], [1.0, 2.0])), json.dumps(_row("odd", ["a", "b"], [1.0, 2.0]))]
    lines[1] = lines[1].replace('"token_nll": [1.0, 2.0]', f'"token_nll": [1.0, {value}]')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for args in (["show", path], ["show", path, "--html", tmp_path / "p.html"]):
        refused = invoke(args)
        one_error_line(refused, 2, str(path), "row 2 (id 'odd'): token_nll", "at token 2")
        assert "nan" not in refused.stdout
    assert not (tmp_path / "p.html").exists()


# What a hostile result file may hold: clear the screen, retitle the window (OSC ... BEL), a CSI as
# one C1 byte, a right-to-left override that reorders what follows, a bell, an isolate.
HOSTILE = ["\x1b[2J", "\x1b]0;owned\x07", "\x9b31m", "\u202etxt.exe", "\x07", "\u2066x"]
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066")


def test_escape_sequences_and_bidi_controls_from_a_file_never_reach_the_terminal(tmp_path):
    rows = [_row("\x1b[31mred-id\u202e", HOSTILE, [1.0, 2.0, 3.0, 4.0, 5.0, 0.5], model="m\x1b]0;t\x07"),
            _row("plain", ["ok"], [1.0])]  # fmt: skip
    path = write_jsonl(tmp_path / "hostile\x1b[2J.jsonl", rows)
    shown = invoke(["show", path, "--limit", "1"])
    assert shown.exit_code == 0, shown.stderr
    assert not any(raw in shown.stdout for raw in RAW), repr(shown.stdout)
    for escaped in ("\\x1b[31mred-id\\u202e", "m\\x1b]0;t\\x07", "\\x1b[2J", "\\x1b]0;owned\\x07", "\\x9b31m",
                    "\\u202etxt.exe", "\\u2066x", "hostile\\x1b[2J.jsonl"):  # fmt: skip
        assert escaped in shown.stdout.replace("\n", ""), escaped  # body, header, "showing" line (wrapped)
    assert "\\x1b]0;owned\\x07' 2.00" in shown.stdout  # the most-nats line, as before
    missing = invoke(["show", path, "--id", "\x1b[2Jnope\u202e"])
    assert missing.exit_code == 2 and "\\x1b[2Jnope\\u202e" in missing.stderr
    assert not any(raw in missing.stderr for raw in RAW)


def test_a_huge_token_is_cut_in_the_terminal_with_a_count_and_whole_in_the_page(tmp_path):
    huge = "x" * 1_000_000
    path = write_jsonl(tmp_path / "huge.jsonl", [_row("huge", ["a", huge, "b"], [0.5, 3.0, 0.25])])
    shown = invoke(["show", path])
    assert shown.exit_code == 0, shown.stderr
    flat = shown.stdout.replace("\n", "")  # the terminal's lines are 80 columns
    assert len(flat) < 5_000
    assert "a" + "x" * 200 + "…[+999,800 chars]b" in flat  # the body
    assert "'" + "x" * 200 + "'…[+999,800 chars] 3.00" in flat  # the most-nats line
    _, page = _page(path, tmp_path)
    assert [_text(text) for *_, text in SPAN.findall(page)] == ["a", huge, "b"]


def test_the_page_isolates_the_direction_of_every_token_and_id(tmp_path):
    path = write_jsonl(tmp_path / "rtl.jsonl", [_row("\u202eid", ["\u202eabc", " next"], [1.0, 2.0], model="m")])
    _, page = _page(path, tmp_path)
    assert re.search(r"\.t \{[^}]*unicode-bidi: isolate;", page)  # every token span
    assert "<bdi>\u202eid</bdi>" in page and "<bdi>m</bdi>" in page and "<bdi>rtl.jsonl</bdi>" in page


def _dom(tmp_path: Path, rows: list[dict], query: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The page of `rows` opened at `#q=query` in headless Chromium: the DOM and its sections."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    directory = tmp_path / re.sub(r"\W", "_", query)
    directory.mkdir()
    out, _ = _page(write_jsonl(directory / "rows.jsonl", rows), directory)
    dumped = _chromium(tmp_path, "--dump-dom", f"{out.as_uri()}#q={query}")
    assert dumped.returncode == 0, dumped.stderr
    sections = re.findall(r'<section class="row( nohit)?" data-id="([^"]*)">(.*?)</section>', dumped.stdout, re.S)
    return dumped.stdout, sections


def _marked(body: str) -> list[int]:
    return [i for i, span in enumerate(re.findall(r'<span class="(t[^"]*)"', body)) if "hit" in span.split()]


@pytest.mark.slow
def test_a_malformed_address_query_is_searched_as_written(tmp_path):
    """decodeURIComponent("%E0") throws; the page searches "%E0" as typed instead of stopping."""
    rows = [_row("pct", ["costs", " 100", "%E0", " more"], [1.0, 1.0, 2.0, 1.0]), _row("other", ["none"], [1.0])]
    dom, sections = _dom(tmp_path, rows, "%E0")
    assert [(bool(hidden), _marked(body)) for hidden, _, body in sections] == [(False, [2]), (True, [])]
    assert re.search(r'id="count">\s*1 tokens in 1 of 2 rows match', dom)


@pytest.mark.slow
def test_the_search_marks_the_right_tokens_when_lower_case_changes_the_length(tmp_path):
    """"İ".toLowerCase() is two characters: offsets into the lower-cased text must be the tokens'."""
    rows = [_row("dotted", ["İİİİ", " cat", " sat"], [1.0, 2.0, 1.0]), _row("dog", ["dog"], [1.0])]
    _, sections = _dom(tmp_path, rows, "cat")
    assert [(bool(hidden), _marked(body)) for hidden, _, body in sections] == [(False, [1]), (True, [])]
    _, sections = _dom(tmp_path, rows, "%C4%B0%C4%B0")  # "İİ" from the address: the first token
    assert [(bool(hidden), _marked(body)) for hidden, _, body in sections] == [(False, [0]), (True, [])]


def test_the_colour_scale_is_the_files_largest_share_also_for_the_rows_picked(tmp_path):
    path = write_jsonl(tmp_path / "two.jsonl", [_row("big", ["a", "b"], [1.0, 9.5]), _row("small", ["c"], [2.0])])
    for args in ([], ["--id", "small"], ["--limit", "1"]):
        shown = invoke(["show", path, *args])
        assert shown.exit_code == 0, shown.stderr
        assert " 9.50 " in shown.stdout.splitlines()[0], (args, shown.stdout)  # the legend's hot end
    out = tmp_path / "small.html"
    assert invoke(["show", path, "--id", "small", "--html", out]).exit_code == 0
    legend = re.findall(r'<span class="sw" style="background:#[0-9a-f]{6};color:#[0-9a-f]{6}">([^<]*)</span>',
                        out.read_text(encoding="utf-8"))  # fmt: skip
    assert legend[-1] == "9.50"
    [(_, colour, _, nats, _)] = SPAN.findall(out.read_text(encoding="utf-8"))
    assert nats == "2.0" and colour != "#a50f15"  # 2 of 9.5 nats: near the cool end, not the hottest red


def test_adjacent_tokens_of_one_colour_are_told_apart_in_the_terminal(tmp_path):
    from io import StringIO

    from rich.console import Console

    from itdd_cli.views.heat import read_heat
    from itdd_cli.views.heat_view import print_heat

    nats = [1.0, 1.0, 1.0, 4.0, 2.0, 2.0]
    path = write_jsonl(tmp_path / "runs.jsonl", [_row("r", ["ab", "cd", "ef", "gh", "ij", "kl"], nats)])
    console = Console(file=StringIO(), force_terminal=True, color_system="truecolor", width=120)
    print_heat(console, read_heat(str(path)), 0)
    body = console.file.getvalue().splitlines()[-1]
    styles = dict(re.findall(r"\x1b\[([0-9;]*)m([a-z]{2})\x1b\[0m", body)[i][::-1] for i in range(6))
    tokens = ["ab", "cd", "ef", "gh", "ij", "kl"]
    assert list(styles) == tokens
    for left, right in zip(tokens, tokens[1:], strict=False):
        assert styles[left] != styles[right], (left, right, styles)  # same background: the underline differs
    assert styles["cd"].startswith("4;") and not styles["ab"].startswith("4;")


def test_a_file_without_a_settings_record_says_so_and_an_old_file_has_no_se_on_hover(tmp_path):
    path = write_jsonl(tmp_path / "old.jsonl", [_row("r", ["a", "b"], [1.0, 2.0])])  # no token_nll_se, no meta
    out, page = _page(path, tmp_path)
    assert "made by: unknown (no settings record old.jsonl.meta.json beside the file)" in page
    titles = [html.unescape(title) for _, _, title, _, _ in SPAN.findall(page)]
    assert titles[0].startswith("1.0000 nats · token 1") and "±" not in "".join(titles)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, oracle_dir, distribution):
    """The same texts scored exactly under the session's oracle (A) and another oracle (B)."""
    from itdd_cli.oracle import OracleDistribution, write_checkpoint

    directory = tmp_path_factory.mktemp("diff")
    other = OracleDistribution.random(11)
    other_dir = write_checkpoint(directory / "other", other)
    source = write_jsonl(directory / "in.jsonl", [{"id": "x", "text": "cadba"}, {"id": "y", "text": "bbd"}])
    files = []
    for name, model in (("a.jsonl", oracle_dir), ("b.jsonl", other_dir)):
        out = directory / name
        result = invoke(["nll", source, "-m", model, "--trust-remote-code", "--estimator", "exact", "--per-token",
                         "-q", "-o", out])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        files.append(out)
    return files, distribution, other


def test_a_diff_page_shows_b_minus_a_per_token_coloured_by_sign(two_models, tmp_path):
    from tests.support.per_token_reference import per_token_shares

    (a, b), first, second = two_models
    out = tmp_path / "diff.html"
    written = invoke(["show", a, b, "--html", out])
    assert written.exit_code == 0, written.stderr
    page = out.read_text(encoding="utf-8")
    spans = SPAN.findall(page)
    truth = [y - x for text in ("cadba", "bbd")
             for x, y in zip(per_token_shares(first, "", text), per_token_shares(second, "", text), strict=True)]
    assert [float(nats) for *_, nats, _ in spans] == pytest.approx(truth, abs=1e-5)
    assert any(d > 0 for d in truth) and any(d < 0 for d in truth)
    for (_, colour, title, nats, _), difference in zip(spans, truth, strict=True):
        red, blue = int(colour[1:3], 16), int(colour[5:7], 16)
        assert (red > blue) if difference > 0.05 else (blue > red) if difference < -0.05 else True, (colour, nats)
        assert " ± 0.0000 nats" in html.unescape(title)  # exact runs: no Monte Carlo error either side
    assert "Where the nats differ" in page and "b.jsonl − a.jsonl" in page
    assert "a.jsonl: model" in page and "b.jsonl: model" in page and "estimator exact" in page
    legend = re.findall(r'<span class="sw" style="[^"]*">([^<]*)</span>', page)
    assert float(legend[0]) == -float(legend[-1]) and float(legend[2]) == 0.0
    shown = invoke(["show", a, b, "--id", "y"])
    assert shown.exit_code == 0 and "Δ nats per token (b.jsonl − a.jsonl" in shown.stdout


def test_a_diff_of_files_that_do_not_pair_is_refused_in_one_line(two_models, tmp_path):
    (a, b), _, _ = two_models
    rows = _rows(a)
    other_ids = write_jsonl(tmp_path / "ids.jsonl", [{**rows[0], "id": "z"}, rows[1]])
    other_tokens = write_jsonl(tmp_path / "tokens.jsonl", [{**rows[0], "token_strings": ["c", "a", "d", "b", "x"]},
                                                           rows[1]])  # fmt: skip
    twice = write_jsonl(tmp_path / "twice.jsonl", [rows[0], rows[0], rows[1]])
    for other, words in ((other_ids, "hold different rows (id 'x' only in a.jsonl)"),
                         (other_tokens, "split its text into different tokens"),
                         (twice, "holds id 'x' twice")):  # fmt: skip
        refused = invoke(["show", a, other, "--html", tmp_path / "never.html"])
        assert refused.exit_code == 2 and words in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never.html").exists()
    assert invoke(["show", a, b, "--html", b]).exit_code == 2  # never over either result file


@pytest.mark.slow
def test_the_diff_page_in_headless_chromium_is_painted_red_and_blue(two_models, tmp_path):
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    import matplotlib.image

    (a, b), _, _ = two_models
    out = tmp_path / "diff.html"
    assert invoke(["show", a, b, "--html", out]).exit_code == 0
    page = out.read_text(encoding="utf-8")
    shot = tmp_path / "diff.png"
    taken = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,600", "--hide-scrollbars", out.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr
    pixels = (matplotlib.image.imread(str(shot))[..., :3] * 255).round().astype(int)
    colours = {colour for _, colour, _, _, _ in SPAN.findall(page)}
    reds = [c for c in colours if int(c[1:3], 16) > int(c[5:7], 16) + 10]
    blues = [c for c in colours if int(c[5:7], 16) > int(c[1:3], 16) + 10]
    assert reds and blues
    for group in (reds, blues):
        painted = sum((abs(pixels - [int(c[i : i + 2], 16) for i in (1, 3, 5)]).max(axis=2) <= 2).sum() for c in group)
        assert painted >= 40, group  # one-letter tokens: a few dozen pixels each
