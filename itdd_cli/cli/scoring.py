"""The scoring commands: each names the option groups it takes and hands them to `build.score_command`."""

from __future__ import annotations

from itdd_cli.cli import signature as g
from itdd_cli.cli.build import score_command
from itdd_cli.cli.signature import Options, takes
from itdd_cli.results.rows import Command


def examples(*lines: str) -> str:
    """A command's help ends with runnable lines (kept as written: click rewraps other paragraphs)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


NLL_EXAMPLES = examples(
    "itdd nll examples/demo.jsonl --format table",
    "itdd nll examples/dna8.jsonl -m dna8 -n 512 -o dna8.csv",
    "cat eval.jsonl | itdd nll -m GSAI-ML/LLaDA-8B-Base | jq .nll_per_token",
)
COND_NLL_EXAMPLES = examples(
    "itdd cond-nll qa.jsonl -m GSAI-ML/LLaDA-8B-Instruct --chat-template -o answers.jsonl",
    "itdd cond-nll qa.jsonl --prompt-field question --response-field answer",
)
RATIO_EXAMPLES = examples(
    "itdd ratio examples/shuffled-pairs.jsonl -m demo -n 64 --format table",
    "itdd ratio prefs.jsonl -m Dream-org/Dream-v0-Base-7B -o ratios.jsonl --summary run.json",
)
CHOICE_EXAMPLES = examples(
    "itdd choice tests/lm_eval_task/sentences.jsonl -m demo -n 64 --format table",
    "itdd choice examples/choice-clear.jsonl -m demo --until-decided 0.01 -n 8 --max-samples 128",
    "itdd choice mmlu.jsonl -m GSAI-ML/LLaDA-8B-Base -o picks.jsonl --summary run.json --fail-below accuracy=0.6",
)

# The order of the groups is the order of the options in each command's help.

@takes(g.CHECKPOINTS, g.OUTPUT, g.DRAWS, g.GUIDED, g.TARGET_SE, g.ROUNDS_CAP, g.LOAD, g.TEXT_FIELDS, g.LONG,
       g.PER_TOKEN, g.INPUT)  # fmt: skip
def nll(options: Options) -> None:
    """−log p(text) for each record's text field."""
    score_command(Command.nll, options)


@takes(g.CHECKPOINTS, g.OUTPUT, g.DRAWS, g.GUIDED, g.TARGET_SE, g.ROUNDS_CAP, g.LOAD, g.PROMPTED, g.BOUNDARY,
       g.COND_FIELDS, g.PER_TOKEN, g.INPUT)  # fmt: skip
def cond_nll(options: Options) -> None:
    """−log p(response | prompt); the prompt is never masked."""
    score_command(Command.cond_nll, options)


@takes(g.ONE_MODEL, g.OUTPUT, g.DRAWS, g.GUIDED, g.TARGET_SE, g.DECISIONS, g.ROUNDS_CAP, g.PAIRED, g.LOAD, g.PROMPTED,
       g.BOUNDARY, g.PAIR_FIELDS, g.INPUT)  # fmt: skip
def ratio(options: Options) -> None:
    """log p(chosen | prompt) − log p(rejected | prompt), with coupled masks by default."""
    score_command(Command.ratio, options)


@takes(g.ONE_MODEL, g.OUTPUT, g.DRAWS, g.GUIDED, g.DECISIONS, g.ROUNDS_CAP, g.PAIRED, g.LOAD, g.PROMPTED,
       g.CHOICE_FIELDS, g.INPUT)  # fmt: skip
def choice(options: Options) -> None:
    """k-way multiple choice: log p(choice | prompt) for each choice, the pick and the accuracy."""
    score_command(Command.choice, options)


COMMANDS = {
    "nll": (nll, NLL_EXAMPLES),
    "cond-nll": (cond_nll, COND_NLL_EXAMPLES),
    "ratio": (ratio, RATIO_EXAMPLES),
    "choice": (choice, CHOICE_EXAMPLES),
}
