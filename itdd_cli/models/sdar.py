"""Dense block-diffusion decoders in Qwen layouts: SDAR (and TraDo, built on it) and Fast-dLLM v2.

* SDAR: Qwen3 weights under their own names (per-head q/k norm), `block_size` in config.json,
  no logit shift. Its own generation and training feed the text with nothing before it, so
  sequences start with the first text token and blocks are counted from it — config.json's
  `bos_token_id` (<|endoftext|>) is never put in front (`text_first`).
* Fast-dLLM v2: Qwen2.5 weights, block 32, and the one-position shift of a causal LM: the state
  at i−1 predicts token i. For the first token of a block that state lies in the previous,
  clean block, as when the model generates (the block before is finished and cached). Its own
  code feeds the (chat-templated) prompt with nothing in front, blocks counted from its first
  token, and never predicts that first token; so a prompt starts at position 0 here too, and
  only a text with no prompt gets <|endoftext|> in front (the Qwen convention), else its first
  token would have no state to be predicted from.

Both read [noisy ‖ clean] rows under the three-part block mask (models/block.py).
"""

from __future__ import annotations

from typing import Any

from itdd_cli.models.block import resolve_block_size
from itdd_cli.models.decoder import BidirectionalDecoderAdapter, bidirectional
from itdd_cli.models.loading import LoadOptions
from itdd_cli.models.qwen import QWEN2_FIELDS, QWEN_FIELDS, copied, mask_id_from

SDAR_MASK = 151669  # "<|MASK|>" in one tokenizer file, "<MASK>" in another: same id
FAST_DLLM_V2_MASK = 151665
FAST_DLLM_V2_BLOCK = 32


class QwenBlockAdapter(BidirectionalDecoderAdapter):
    """A block-diffusion decoder in a Qwen layout: block size from config.json (else the family's
    published one), mask id from config.json, the tokenizer's mask tokens, else the published id."""

    text_first = True  # a BOS in front would move every block boundary by one token
    published_block: int | None = None
    mask_tokens: tuple[str, ...] = ()
    published_mask: int

    def resolve_block_size(self, config: dict[str, Any], options: LoadOptions) -> int | None:
        return resolve_block_size(config, options.block_size, self.published_block, self.family)

    def find_mask_id(self, config: dict[str, Any]) -> int:
        return mask_id_from(config, self.tokenizer, self.mask_tokens, self.published_mask)


class SDARAdapter(QwenBlockAdapter):
    family = "sdar"
    mask_tokens, published_mask = ("<|MASK|>", "<MASK>"), SDAR_MASK

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import Qwen3Config, Qwen3ForCausalLM

        return bidirectional(Qwen3Config, Qwen3ForCausalLM, **copied(config, QWEN_FIELDS, self.family),
                             use_sliding_window=False)  # fmt: skip


class FastDLLMv2Adapter(QwenBlockAdapter):
    family = "fast-dllm-v2"
    shifted_logits = True  # as its own code: a prompt starts at position 0; a lone text needs <|endoftext|> first
    published_block = FAST_DLLM_V2_BLOCK
    mask_tokens, published_mask = ("|<MASK>|", "<|mask|>"), FAST_DLLM_V2_MASK

    def build_config(self, config: dict[str, Any]) -> tuple[Any, Any]:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        return bidirectional(Qwen2Config, Qwen2ForCausalLM, **copied(config, QWEN2_FIELDS, self.family),
                             use_sliding_window=False)  # fmt: skip
