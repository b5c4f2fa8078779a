"""`itdd lm-eval …`: lm-evaluation-harness's own command line with the `itdd` backend registered."""

from __future__ import annotations

import typer

from itdd_cli.errors import ItddError, ModelError, UsageError

LM_EVAL_HELP = """Usage: itdd lm-eval [LM-EVAL ARGUMENTS]...

Run lm-evaluation-harness with itdd's `itdd` model backend registered; every argument goes to
lm-eval's own command line unchanged (`itdd lm-eval run --help` lists them). Needs the extra:
pip install 'itdd[lm-eval]'.

Model args (--model_args, comma-separated): pretrained (hub id, directory or bundled name; default
demo), samples (draws per question, 128), estimator, seed, independent, max_tokens, dtype, device,
family, tokenizer, revision, trust_remote_code, chat_template, mc_log (JSONL of per-request Monte
Carlo standard errors), until_decided and max_samples (rounds until each question's pick is decided,
as `itdd choice --until-decided`; the results JSON's config.itdd_monte_carlo gives, per task, the mean
SE, the share decided and the forward rows), cfg (classifier-free guidance, as `--cfg`: guided scores),
long=rolling and context (perplexity tasks' long documents
in windows, as `itdd nll --long rolling --context N`).

Examples:
  itdd lm-eval run --model itdd --model_args pretrained=GSAI-ML/LLaDA-8B-Base,samples=128 --tasks arc_easy
  itdd lm-eval run --model itdd --model_args pretrained=demo,samples=32 --include_path my_tasks --tasks my_task
  itdd lm-eval run --model itdd --model_args pretrained=demo,long=rolling,context=16 --tasks wikitext
  torchrun --nproc_per_node 2 -m itdd_cli lm-eval run --model itdd --model_args pretrained=... --tasks piqa
"""

# Every argument goes to lm-eval unchanged, its own --help included.
SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def lm_eval(ctx: typer.Context) -> None:
    """Run lm-evaluation-harness with the `itdd` backend (`itdd lm-eval --help`; every lm-eval flag works)."""
    if ctx.args in ([], ["--help"], ["-h"]):
        typer.echo(LM_EVAL_HELP, nl=False)
        return
    try:
        from itdd_cli.harness.lm_eval_cli import run_lm_eval
    except ImportError as error:
        raise UsageError(f"lm-eval is not installed ({error}); pip install 'itdd[lm-eval]'") from None
    try:
        run_lm_eval(ctx.args)
    except ItddError:
        raise
    except Exception as error:  # lm-eval's own failures (unknown task, bad flag value): one line, exit 1
        raise ModelError(f"lm-eval failed: {type(error).__name__}: {error}") from error
