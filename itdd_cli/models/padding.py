"""The attention mask of a bidirectional batch, decided on the host.

transformers turns a 2-D padding mask into a 4-D one and first asks the device whether any
token is padding (`padding_mask.all()`), a host sync in every forward pass. The engine hands
the mask over on the host, so the question is answered there: no padding gives no mask at all
(any SDPA kernel, flash included, may run); padding gives an additive (B, 1, 1, W) bias that
transformers passes through unchanged, copied to the device without waiting.
"""

from __future__ import annotations

import torch

from itdd_cli.models.block import additive


def padding_mask(attention_mask: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
    """None when every token of the (B, W) mask is real, else the (B, 1, 1, W) additive bias on `device`."""
    if attention_mask.device.type != "cpu":  # a caller that put it on the device already: transformers decides
        return attention_mask
    if bool(attention_mask.all()):
        return None
    return additive(attention_mask.bool()[:, None, None, :], dtype).to(device, non_blocking=True)
