"""The package's shape: each top-level file or folder is a room, imports are arrows; rooms sit in
layers and import only rooms of lower layers (no arrow back up, so no cycle). docs/architecture.md
draws the same layers; this test reads its table so the picture cannot drift from the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "itdd_cli"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
MAX_ROOMS, MAX_LEVELS, MAX_CLI_FUNCTION_LINES = 28, 11, 40


def rooms() -> set[str]:
    return {path.stem for path in PACKAGE.glob("*.py")} | {
        path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()
    }


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_rooms(path: Path) -> set[str]:
    """Every room a file imports, at module level, inside functions or under TYPE_CHECKING alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "itdd_cli":
            if node.module == "itdd_cli":
                found |= {alias.name if alias.name in rooms() else "__init__" for alias in node.names}
            else:
                found.add(room_of(node.module))
        elif isinstance(node, ast.Import):
            found |= {room_of(alias.name) for alias in node.names if alias.name.split(".")[0] == "itdd_cli"}
    return found


def arrows() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {room: set() for room in rooms()}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        room = relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 else path.stem
        graph[room] |= imported_rooms(path) - {room}
    return graph


def documented_layers() -> list[list[str]]:
    """The table in docs/architecture.md: `| layer | rooms | may import |`, top layer first."""
    table = re.findall(r"^\| *(\d+) *\| *([^|]+?) *\|", ARCHITECTURE.read_text(encoding="utf-8"), flags=re.M)
    return [[name.strip(" `/") for name in names.split(",")] for _, names in table]


def test_every_room_is_in_exactly_one_documented_layer():
    layered = [room for layer in documented_layers() for room in layer]
    assert sorted(layered) == sorted(rooms()), "docs/architecture.md's layer table must list every room once"


def test_no_arrow_goes_up_or_sideways_into_a_cycle():
    level = {room: index for index, layer in enumerate(reversed(documented_layers())) for room in layer}
    upward = [(room, target) for room, targets in arrows().items() for target in targets
              if level[target] >= level[room]]  # fmt: skip
    assert upward == [], f"imports of a room in the same or a higher layer: {upward}"


def test_the_house_has_at_most_28_rooms_and_11_levels():
    graph = arrows()
    depth: dict[str, int] = {}

    def levels(room: str) -> int:
        if room not in depth:
            depth[room] = 1 + max((levels(target) for target in graph[room]), default=0)
        return depth[room]

    deepest = max(levels(room) for room in graph)
    print(f"rooms {len(graph)}, levels {deepest}")
    assert len(graph) <= MAX_ROOMS
    assert deepest <= MAX_LEVELS


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").glob("*.py")), ids=lambda path: path.name)
def test_no_cli_function_is_longer_than_40_lines(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_CLI_FUNCTION_LINES]  # fmt: skip
    assert long == []


def test_a_room_that_imports_itself_upward_is_caught(tmp_path, monkeypatch):
    """The checks above can fail: a views module importing run is an arrow back up."""
    level = {room: index for index, layer in enumerate(reversed(documented_layers())) for room in layer}
    probe = tmp_path / "probe.py"
    probe.write_text("from itdd_cli.run.session import run_scoring\n", encoding="utf-8")
    assert level[next(iter(imported_rooms(probe)))] > level["views"]
