"""Attention over packed SFT rows, one causal SDPA call per example instead of one masked call per row.

:class:`~trainers.sft.PackedBatches` packs a batch's examples into rows as
long as its longest example and, for the coupled model, passes the
block-diagonal causal mask. SDPA with a mask computes every query against
every key of the row, so a row of five 100-token examples costs a 500-token
attention (25 times one example's), and the masked kernel is slower per
FLOP than the causal one. This implementation reads the examples' bounds off
the mask (a token that does not see the token before it starts an example),
and runs each example alone with ``is_causal``: the same attention, at the
cost of the examples' own lengths. It is registered with transformers'
``AttentionInterface`` under :data:`NAME`; ``run_sft`` selects it for the
coupled model's training and restores SDPA before saving.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

__all__ = ["NAME", "packed_attention"]

NAME = "ffreason_packed"


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' attention signature: ``query``/``key``/``value`` ``[rows, heads, tokens, head_dim]``, the
    output ``[rows, tokens, heads, head_dim]``. Without a 4-D boolean mask (or with a query shorter than the keys, as
    in decoding) it is SDPA's."""
    if attention_mask is None or attention_mask.dtype != torch.bool or attention_mask.dim() != 4 or \
            query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    tokens = query.shape[2]
    # token i + 1 starts an example when it does not attend to token i
    starts = ~attention_mask[:, 0].diagonal(offset=-1, dim1=1, dim2=2)
    rows = []
    # unbind and split (not slicing): their gradients are one stack and one cat, not a zero tensor per slice
    for row_starts, q, k, v in zip(starts.tolist(), query.unbind(0), key.unbind(0), value.unbind(0)):
        bounds = [0, *(i + 1 for i, s in enumerate(row_starts) if s), tokens]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        rows.append(torch.cat([F.scaled_dot_product_attention(qs[None], ks[None], vs[None], dropout_p=dropout,
                                                              is_causal=True, scale=scaling)[0]
                               for qs, ks, vs in zip(q.split(sizes, 1), k.split(sizes, 1), v.split(sizes, 1))],
                              dim=1))
    return torch.stack(rows).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, packed_attention)
