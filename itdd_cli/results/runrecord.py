"""The settings record beside an output file (`OUT.meta.json`): what fixed its numbers, and
which input lines were skipped. `--resume` refuses to continue a file made differently.

The weights fingerprint is cheap on any checkpoint size: for every weights file (sorted by
name) its name, its size and a SHA-256 over its first and last 64 KiB (the safetensors header
with every tensor's name, dtype, shape and offset, and the last tensor's bytes) and 16 blocks of
4 KiB spread evenly through it; and the same hash of config.json. Retrained or edited weights
change it; copying or touching the files does not. Imports neither torch nor transformers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from itdd_cli.core.settings import Settings
from itdd_cli.errors import UsageError
from itdd_cli.io.records import Fields
from itdd_cli.results.rows import RowSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")
EDGE = 64 * 1024
BLOCK = 4 * 1024
BLOCKS = 16

# Settings that change numbers, compared on --resume (the rest is recorded for the reader).
DETERMINING = ("tool_version", "command", "model", "revision", "weights", "tokenizer", "block_size", "family",
               "dtype", "framing", "estimator", "samples", "seed", "coupled", "long", "context", "chat_template",
               "keep_boundary", "target_se", "until_decided", "max_samples", "per_token", "fields",
               "cfg")  # fmt: skip
# Settings that may change the last digits only (float rounding of other batch shapes).
ROUNDING = ("device", "batch_rows", "max_tokens")
ROUNDING_FLAGS = {"device": "--device", "batch_rows": "--batch-size", "max_tokens": "--max-tokens"}  # None: auto


def settings_values(spec: RowSpec, settings: Settings) -> dict[str, Any]:
    """The settings that fix a run's numbers as the settings record and the summary write them:
    null where the command takes no such option (`RowSpec.rolls`, `prompted`, `several_texts`)."""
    return {
        "estimator": settings.estimator.value,
        "samples": settings.samples,
        "seed": settings.seed,
        "coupled": not settings.independent if spec.several_texts else None,
        "long": settings.long.value if spec.rolls else None,
        "context": settings.context if spec.rolls else None,
        "chat_template": settings.chat_template,
        "keep_boundary": settings.keep_boundary if spec.prompted else None,
        "target_se": settings.target_se,
        "until_decided": settings.until_decided,
        "max_samples": settings.cap if settings.adaptive else None,
        "per_token": settings.per_token if spec.per_token else None,
    }


def guided_values(settings: Settings) -> dict[str, float]:
    """--cfg's scale, for the record and the summary of a guided run only: unguided ones stay as they were."""
    return {"cfg": settings.cfg} if settings.guidance is not None else {}


def input_fields(spec: RowSpec, fields: Fields) -> dict[str, Any]:
    """The input field names the command read, as the record reads back from JSON (--keep's tuple a list)."""
    values = {name: getattr(fields, name) for name in spec.inputs}
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


def record_path(output: str) -> str:
    return f"{output}.meta.json"


def _sampled_hash(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as file:
        offsets = [0, max(0, size - EDGE)] + [size * i // BLOCKS for i in range(BLOCKS)]
        for offset, length in zip(offsets, [EDGE, EDGE] + [BLOCK] * BLOCKS, strict=True):
            file.seek(offset)
            digest.update(file.read(length))
    return digest.hexdigest()


def _local_directory(model: str, revision: str | None) -> Path | None:
    if Path(model).is_dir():
        return Path(model)
    try:  # a hub id: the cached snapshot that was loaded, found without the network
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, revision=revision, local_files_only=True))
    except Exception:  # not cached as a whole snapshot: the revision pins it
        return None


def weights_fingerprint(model: str, revision: str | None, base: str | None = None) -> str | None:
    """A sampled hash of a local checkpoint's weights; a LoRA adapter's with its base's after a '+'."""
    if base is not None:
        return f"{weights_fingerprint(model, None)}+{weights_fingerprint(base, revision)}"
    directory = _local_directory(model, revision)
    if directory is None:
        return None
    digest = hashlib.sha256()
    files = sorted(p for p in directory.iterdir() if p.name.endswith(WEIGHT_SUFFIXES) or p.name == "config.json")
    for path in files:
        digest.update(f"{path.name}\0{path.stat().st_size}\0{_sampled_hash(path)}\n".encode())
    return "sampled-sha256:" + digest.hexdigest()[:32]


def read_record(output: str) -> dict[str, Any] | None:
    path = Path(record_path(output))
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot resume {output}: its settings record {path} is unreadable ({error}); "
                         "use --overwrite") from None  # fmt: skip
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise UsageError(f"cannot resume {output}: {path} is not an itdd settings record; use --overwrite")
    return record


def write_record(output: str, settings: dict[str, Any], skipped: list[int], lossy: list[int]) -> None:
    """Atomically (temporary file + rename), so a crash leaves the old record or the new one.

    The skipped and lossy lines are kept so that a resumed run's summary counts them too."""
    path = Path(record_path(output))
    document = {"tool": "itdd", "output": Path(output).name, "settings": settings, "skipped_lines": skipped,
                "lossy_lines": lossy}  # fmt: skip
    descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o666 & ~_umask())
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(json.dumps(document, indent=2) + "\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def differences(recorded: dict[str, Any], current: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return [f"{name} {recorded.get(name)!r} → {current.get(name)!r}"
            for name in names if recorded.get(name) != current.get(name)]  # fmt: skip
