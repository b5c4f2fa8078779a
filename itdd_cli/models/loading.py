"""Shared loading helpers: options, config.json, tokenizers, devices and dtypes."""

from __future__ import annotations

import json
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from itdd_cli.core.processes import launched, process_device
from itdd_cli.errors import ModelError, UsageError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Tokenizers without a limit report int(1e30); anything this large means "unknown".
UNBOUNDED_LENGTH = 10**9


def quiet_transformers() -> None:
    """Keep transformers' warnings and download bars off stderr, which belongs to itdd."""
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    disable_progress_bars()


@dataclass(frozen=True)
class LoadOptions:
    model: str
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    family: str | None = None
    tokenizer: str | None = None
    revision: str | None = None
    device_map: str | None = None  # "auto": spread a model too large for one device (accelerate)
    allow_pickle: bool = False  # pickle weights can run code when loaded: refused unless asked
    block_size: int | None = None  # --block-size: overrides a block-diffusion checkpoint's own
    base: str | None = None  # --base: the checkpoint a LoRA adapter directory applies to (models/lora.py)
    merge: bool = True  # --no-merge: a LoRA update runs beside the base weights instead of merged into them

    def __post_init__(self) -> None:
        check_device(self.device)  # a device this machine lacks is a usage error before anything loads
        if self.tokenizer and looks_local(self.tokenizer) and not Path(self.tokenizer).is_dir():
            raise UsageError(f"--tokenizer {self.tokenizer}: no such directory (a hub id looks like 'org/name')")

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            if launched():  # each process takes its own GPU, as accelerate assigns them
                return process_device()
            return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
        return torch.device(self.device)  # checked when the options were built (check_device)

    @property
    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.bfloat16 if self.torch_device.type == "cuda" else torch.float32
        return DTYPES[self.dtype]

    def hub_kwargs(self) -> dict[str, Any]:
        return {"revision": self.revision} if self.revision else {}

    def weights_kwargs(self) -> dict[str, Any]:
        return {"use_safetensors": None if self.allow_pickle else True}

    def placement_kwargs(self) -> dict[str, Any]:
        return {"device_map": self.device_map} if self.device_map else {}

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move to the chosen device unless --device-map already spread the model."""
        return model.eval() if self.device_map else model.to(self.torch_device).eval()


DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps or xpu"


def check_device(device: str) -> None:
    """Refuse (exit 2) a --device that is malformed or absent on this machine."""
    if device == "auto":
        return
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r}: unknown device; choose one of {DEVICE_CHOICES}") from None
    if parsed.type == "cpu":
        return
    if parsed.type == "meta":
        raise UsageError("--device meta: meta tensors hold no values and cannot score; use cpu or cuda")
    backend = {"cuda": torch.cuda, "mps": torch.backends.mps}.get(parsed.type, getattr(torch, parsed.type, None))
    if parsed.type not in ("cuda", "mps", "xpu") or backend is None:
        raise UsageError(f"--device {device}: itdd does not run on {parsed.type}; choose one of {DEVICE_CHOICES}")
    if not backend.is_available():
        raise UsageError(f"--device {device}: no {parsed.type} device is available on this machine; use --device cpu")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if parsed.index is not None and parsed.index >= count:
        raise UsageError(f"--device {device}: this machine has {count} {parsed.type} device(s), numbered from 0")


def read_config(options: LoadOptions) -> dict[str, Any]:
    """config.json as a plain dict, read without importing or running any model code."""
    local = Path(options.model)
    try:
        if local.is_dir():
            path = local / "config.json"
            if not path.is_file():
                raise ModelError(f"{options.model}: no config.json in this directory")
        elif local.exists():
            raise UsageError(f"--model {options.model}: expected a directory or a hub id, got a file")
        elif looks_local(options.model):
            raise ModelError(f"{options.model}: no such directory (a hub id looks like 'org/name')")
        else:
            path = _hub_config(options)
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ModelError, UsageError):
        raise
    except Exception as error:  # network, missing repo, bad JSON: one message
        raise ModelError(f"cannot read config.json of {options.model}: {error}") from error
    if not isinstance(config, dict):
        raise ModelError(f"{options.model}: config.json is not a JSON object")
    return config


def _hub_config(options: LoadOptions) -> Path:
    """The hub checkpoint's config.json: from the cache, else downloaded. Without a network the hub
    client retries for half a minute and logs each try; an unresolvable hub host fails at once."""
    from huggingface_hub import hf_hub_download

    kwargs = options.hub_kwargs()
    try:
        return Path(hf_hub_download(options.model, "config.json", local_files_only=True, **kwargs))
    except Exception:  # not cached (or offline mode): ask the hub
        pass
    reason = _unreachable()
    if reason:
        raise ModelError(f"cannot read config.json of {options.model}: it is not in the local cache and {reason}; "
                         "connect, or pass a local directory") from None  # fmt: skip
    return Path(hf_hub_download(options.model, "config.json", **kwargs))


def _unreachable() -> str | None:
    """Why the hub cannot be asked (offline mode aside: the client then answers from its cache at once)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry messages are not itdd's to print
    host = urlparse(constants.ENDPOINT).hostname
    proxied = any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    if host and not proxied and not constants.HF_HUB_OFFLINE:
        try:
            socket.getaddrinfo(host, 443)
        except OSError as error:
            return f"{host} cannot be reached ({error.strerror or error})"
    return None


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def hub_adapter(options: LoadOptions) -> str | None:
    """A hub id whose repository holds a LoRA adapter (adapter_config.json): the local directory of its
    files (the cache's snapshot, downloaded if need be), which then loads as an adapter directory does.
    None for anything else; a full checkpoint in the cache costs no request."""
    if looks_local(options.model) or Path(options.model).exists():
        return None
    from huggingface_hub import hf_hub_download

    def fetch(name: str, cached: bool) -> Path | None:
        try:
            return Path(hf_hub_download(options.model, name, local_files_only=cached, **options.hub_kwargs()))
        except Exception:  # not there (or no network): not an adapter as far as itdd can tell
            return None

    config = fetch(ADAPTER_FILES[0], cached=True)
    if config is None:
        if fetch("config.json", cached=True) is not None or _unreachable():
            return None
        config = fetch(ADAPTER_FILES[0], cached=False)
        if config is None:
            return None
    for name in ADAPTER_FILES[1:]:  # into the same snapshot directory, beside adapter_config.json
        fetch(name, cached=True) or fetch(name, cached=False)
    return str(config.parent)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def refuse_pickle_only(options: LoadOptions) -> None:
    """A local checkpoint with pickle weights and no safetensors is refused without --allow-pickle."""
    local = Path(options.model)
    if options.allow_pickle or not local.is_dir():
        return
    names = [path.name for path in local.iterdir()]
    if any(name.endswith(".safetensors") for name in names):
        return
    pickles = [name for name in names if name.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise ModelError(
            f"{options.model} has only pickle weights ({', '.join(sorted(pickles)[:3])}), which can run code when "
            "loaded — convert them to safetensors, or pass --allow-pickle if you trust the source"
        )


def looks_local(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")


def ships_tokenizer(options: LoadOptions) -> bool:
    """Whether the checkpoint has tokenizer files of its own (a hub repo: found online or in the cache)."""
    local = Path(options.model)
    if local.is_dir():
        return any((local / name).is_file() for name in TOKENIZER_FILES)
    from huggingface_hub import hf_hub_download

    for name in TOKENIZER_FILES[:2]:
        try:
            hf_hub_download(options.model, name, **options.hub_kwargs())
            return True
        except Exception:  # absent, offline and not cached, no network: all mean "none of its own"
            continue
    return False


def load_tokenizer(options: LoadOptions, default: str | None = None) -> Any:
    """--tokenizer if given, else the checkpoint's own; `default` when the checkpoint ships none.

    `trust_remote_code` is always passed explicitly: left unset, transformers asks
    interactively for repositories whose config has an `auto_map`.
    """
    from transformers import AutoTokenizer

    own = default is None or ships_tokenizer(options)
    source = options.tokenizer or (options.model if own else default)
    revision = options.hub_kwargs() if source == options.model else {}
    try:
        with warnings.catch_warnings():  # it parses config.json too, and warns about its legacy keys
            warnings.simplefilter("ignore")
            return AutoTokenizer.from_pretrained(source, trust_remote_code=options.trust_remote_code, **revision)
    except Exception as error:
        if not options.trust_remote_code:  # a custom tokenizer class: its tokenizer.json still loads natively
            try:
                from transformers import PreTrainedTokenizerFast

                return PreTrainedTokenizerFast.from_pretrained(source, **revision)
            except Exception:
                pass
        hint = "" if options.tokenizer else " — use --tokenizer to load one from elsewhere"
        raise ModelError(f"cannot load a tokenizer from {source}: {error}{hint}") from error


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sane_max_length(config: dict[str, Any], tokenizer: Any) -> int | None:
    """The smallest length limit that the config or tokenizer states, if any."""
    limits = [config.get(key) for key in ("max_position_embeddings", "max_sequence_length", "n_positions")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    valid = [int(x) for x in limits if isinstance(x, int) and 0 < x < UNBOUNDED_LENGTH]
    return min(valid) if valid else None
