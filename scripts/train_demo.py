"""Train the bundled English `demo` model on the documentation that ships with CPython.

    python scripts/train_demo.py                 # writes itdd_cli/bundled/demo and examples/shuffled-pairs.jsonl

Text: the docstrings of the standard library's modules plus `pydoc_data.topics`, split into
sentences of 6–30 words (deterministic order). About 2 % of the sentences (chosen by a hash) are
held out of training; `examples/shuffled-pairs.jsonl` pairs each held-out sentence (chosen) with
a word-shuffled copy (rejected). Tokenizer: a 2048-piece BPE trained on the training sentences.
Model: a small bidirectional Llama trained as a masked-diffusion LM, saved in LLaDA's format
(bfloat16 weights, ~3 MB). Fixed seeds throughout; about 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import re
import sys
import sysconfig
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdm import build_model, save_llada, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>"]
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
WORDY = re.compile(r"^[A-Z][^<>{}\[\]=|`]+[.!?]$")  # prose, not code
MAX_TOKENS = 64


def documentation_text() -> list[str]:
    import pydoc_data.topics

    texts = [pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if any(part in {"test", "tests", "site-packages", "idle_test", "lib2to3"} for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node)
                if docstring:
                    texts.append(docstring)
    return texts


def sentences() -> list[str]:
    seen: set[str] = set()
    result = []
    for text in documentation_text():
        for sentence in SENTENCE_END.split(" ".join(text.split())):
            words = sentence.split()
            letters = sum(c.isalpha() or c == " " for c in sentence) / len(sentence)
            if 6 <= len(words) <= 30 and letters > 0.85 and WORDY.match(sentence) and sentence not in seen:
                seen.add(sentence)
                result.append(sentence)
    return result


def held_out(sentence: str) -> bool:
    return hashlib.sha256(sentence.encode()).digest()[0] < 6  # about 2.3 %


def shuffled(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    for _ in range(20):
        copy = words[:]
        rng.shuffle(copy)
        if copy != words:
            return " ".join(copy)
    return " ".join(reversed(words))


def train_tokenizer(texts: list[str], directory: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")  # every word starts with ▁
    backend.decoder = decoders.Metaspace(prepend_scheme="always")
    backend.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2048, special_tokens=SPECIALS))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=SPECIALS[0], eos_token=SPECIALS[1],
                                        pad_token=SPECIALS[1], model_max_length=MAX_TOKENS)  # fmt: skip
    tokenizer.save_pretrained(directory)
    return tokenizer


def write_examples(tokenizer, evaluation: list[str], seed: int) -> None:
    """Held-out sentences that fit the model (with BOS): shuffled pairs and a small nll file."""
    fitting = [s for s in evaluation if len(tokenizer(s, add_special_tokens=False)["input_ids"]) < MAX_TOKENS]
    rng = random.Random(seed)
    pairs = [{"id": f"held{i:03d}", "chosen": s, "rejected": shuffled(s, rng)} for i, s in enumerate(fitting)]
    (ROOT / "examples" / "shuffled-pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    texts = "".join(json.dumps({"id": f"s{i}", "text": s}) + "\n" for i, s in enumerate(fitting[:8]))
    (ROOT / "examples" / "demo.jsonl").write_text(texts)
    print(f"wrote examples/shuffled-pairs.jsonl ({len(pairs)} pairs) and examples/demo.jsonl", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "itdd_cli" / "bundled" / "demo")
    parser.add_argument("--examples-only", action="store_true", help="rewrite the example files from --out's tokenizer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = sentences()
    training = [s for s in corpus if not held_out(s)]
    evaluation = [s for s in corpus if held_out(s)]
    print(f"{len(training)} training sentences, {len(evaluation)} held out", flush=True)
    if args.examples_only:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.out, trust_remote_code=False)
    else:
        tokenizer = train_tokenizer(training, args.out)
    encoded = [tokenizer(s, add_special_tokens=False)["input_ids"][: MAX_TOKENS - 1] for s in training]
    bos, mask = tokenizer.convert_tokens_to_ids(SPECIALS[0]), tokenizer.convert_tokens_to_ids(SPECIALS[2])
    eos = tokenizer.convert_tokens_to_ids(SPECIALS[1])

    def batches(generator: torch.Generator):
        picks = torch.randint(len(encoded), (args.batch,), generator=generator).tolist()
        width = 1 + max(len(encoded[i]) for i in picks)
        ids = torch.full((args.batch, width), eos)
        attention = torch.zeros_like(ids)
        for row, i in enumerate(picks):
            ids[row, : 1 + len(encoded[i])] = torch.tensor([bos, *encoded[i]])
            attention[row, : 1 + len(encoded[i])] = 1
        scorable = attention.bool()
        scorable[:, 0] = False  # BOS is framing
        return ids, attention, scorable

    if args.examples_only:
        write_examples(tokenizer, evaluation, args.seed)
        return
    model = build_model(vocab=len(tokenizer), d=160, layers=3, heads=5, mlp=448, max_length=MAX_TOKENS, seed=args.seed)
    train(model, batches, mask, args.steps, lr=2e-3, seed=args.seed, log_every=100)
    save_llada(model.to(torch.bfloat16), args.out, mask, bos, eos, max_length=MAX_TOKENS)
    write_examples(tokenizer, evaluation, args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
