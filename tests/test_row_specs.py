"""Each command's `RowSpec` is the one declaration of its inputs and its command-only settings:
the CLI's options, the API's result classes and the settings record agree with it."""

from __future__ import annotations

import dataclasses

import pytest
from typer.main import get_command

from itdd_cli.cli.app import app
from itdd_cli.core.settings import Settings
from itdd_cli.core.windows import Long
from itdd_cli.harness.api import RESULTS
from itdd_cli.io.records import Fields
from itdd_cli.results.rows import SPECS, Command
from itdd_cli.results.runrecord import input_fields, settings_values

PARAMS = {command: {param.name for param in get_command(app).commands[command.value].params} for command in Command}


@pytest.mark.parametrize("command", list(Command))
def test_the_cli_takes_the_field_options_and_the_command_only_options_the_spec_declares(command):
    spec = SPECS[command]
    assert all(hasattr(Fields(), name) for name in spec.inputs)
    named = {name.removesuffix("_field") for name in PARAMS[command] if name.endswith("_field")}
    assert named == set(spec.inputs) - {"keep"}
    assert {"long", "context"} <= PARAMS[command] if spec.rolls else not {"long", "context"} & PARAMS[command]
    assert ("independent" in PARAMS[command]) == spec.several_texts


@pytest.mark.parametrize("command", list(Command))
def test_each_api_result_class_has_the_rows_fields_in_order(command):
    """The row's fields, then its --per-token fields, then `extra` (the --keep fields, carried as given)."""
    spec = SPECS[command]
    expected = [*spec.names, *(field.name for field in spec.per_token or ()), "extra"]
    assert [field.name for field in dataclasses.fields(RESULTS[command])] == expected


SETTINGS = Settings(samples=16, seed=3, long=Long.rolling, context=4, keep_boundary=True, independent=True,
                    target_se=0.5, per_token=True)  # fmt: skip
# What the record and the summary say for SETTINGS: null where the command takes no such option.
EXPECTED = {  # (coupled, long, context, keep_boundary, per_token)
    Command.nll: (None, "rolling", 4, None, True),
    Command.cond_nll: (None, None, None, True, True),
    Command.ratio: (False, None, None, True, None),
    Command.choice: (False, None, None, True, None),
}


def test_every_command_has_its_expected_settings():
    assert set(EXPECTED) == set(Command)


@pytest.mark.parametrize("command", list(Command))
def test_settings_values_are_null_where_the_command_takes_no_such_option(command):
    values = settings_values(SPECS[command], SETTINGS)
    common = {"estimator": "control-variate", "samples": 16, "seed": 3, "chat_template": False, "target_se": 0.5,
              "until_decided": None, "max_samples": 128}  # fmt: skip
    assert values == common | dict(zip(("coupled", "long", "context", "keep_boundary", "per_token"),
                                       EXPECTED[command], strict=True))  # fmt: skip


def test_input_fields_are_the_commands_own_as_json_reads_them_back():
    fields = Fields(text="body", prompt="q", keep=("src",))
    assert input_fields(SPECS[Command.nll], fields) == {"id": "id", "text": "body", "keep": ["src"]}
    assert input_fields(SPECS[Command.choice], fields) == {"id": "id", "prompt": "q", "choices": "choices",
                                                          "label": "label", "keep": ["src"]}  # fmt: skip
