"""A KV-cached decode loop for Llama-architecture models on CPU: the tiny model's rollout path.

Hugging Face ``generate`` spends most of a tiny model's decode step outside
arithmetic: per-token mask building, a cache that grows by concatenation,
logits processors, and (for the coupled model) the position ids recomputed
over the whole sequence at every token. :func:`decode` does the same
computation as ``generate`` with the model's own weights and nothing else:

- keys and values go into a cache allocated once for the whole completion
  and written in place;
- position ids advance token by token (:meth:`PositionCoupling.advance` for
  the coupled model, a counter for plain positions);
- rows that have emitted EOS leave the batch, so a batch of short answers
  costs what its live rows cost;
- each layer runs Llama's operations in Llama's order (RMSNorm, rotary
  embedding, attention, SiLU MLP); only a new token's attention differs in
  form, two matrix products instead of SDPA's kernel (faster at one query),
  which sum the same terms up to rounding. Greedy output is token for token
  that of ``generate``, and sampling (temperature, top-k, top-p, as its
  logits warpers apply them) draws the same tokens under the same seed: the
  tests check both on plain and coupled models (``tests/test_decoder.py``),
  and ``python -m benchmarks roofline`` on the model it times.

It reads the model's parameters at every call, so a trainer that updates the
model in place samples from the current policy. Models it does not cover
(other architectures, a GPU, LoRA wrappers, a non-default rotary scaling)
are named by :func:`unsupported`; callers fall back to ``generate`` for them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["unsupported", "decode"]


def unsupported(model) -> str | None:
    """Why :func:`decode` cannot run ``model`` (None: it can)."""
    from transformers import LlamaForCausalLM

    if not isinstance(model, LlamaForCausalLM):
        return f"{type(model).__name__} is not a LlamaForCausalLM"
    cfg = model.config
    param = model.lm_head.weight
    if param.device.type != "cpu":
        return f"the model is on {param.device.type}, the decoder runs on CPU"
    if param.dtype != torch.float32:
        return f"the model is {param.dtype}, the decoder runs float32"
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return "attention or MLP biases"
    if cfg.hidden_act != "silu":
        return f"hidden_act {cfg.hidden_act!r}"
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") != "default":
        return f"rope_type {rope.get('rope_type')!r}"
    return None


class _Weights:
    """The model's parameters as the loop uses them (references, not copies, except the fused projections)."""

    def __init__(self, model):
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.scale = self.head_dim ** -0.5
        self.embed = model.model.embed_tokens.weight
        self.norm = model.model.norm.weight
        self.lm_head = model.lm_head.weight
        self.inv_freq = model.model.rotary_emb.inv_freq.float()
        self.rope_scale = float(model.model.rotary_emb.attention_scaling)
        self.layers = []
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((layer.input_layernorm.weight,
                                torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
                                a.o_proj.weight, layer.post_attention_layernorm.weight,
                                torch.cat([m.gate_proj.weight, m.up_proj.weight]), m.down_proj.weight))


def _rotary(w: _Weights, positions):
    """cos and sign-folded sin, ``[rows, 1, tokens, head_dim]``, as LlamaRotaryEmbedding computes them."""
    freqs = positions[..., None].float() * w.inv_freq  # = LlamaRotaryEmbedding's K=1 matmul, element for element
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    if w.rope_scale != 1.0:
        cos, sin = cos * w.rope_scale, sin * w.rope_scale
    half = sin.shape[-1] // 2
    sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)  # rotate_half(x) * sin == roll(x) * this
    return cos[:, None], sin[:, None]


def _project(w: _Weights, layer, x, cos, sin):
    """A layer's queries ``[rows, heads, tokens, head_dim]`` (rotated), keys (rotated) and values (``kv_heads``
    heads each)."""
    rows, n, _ = x.shape
    heads, kv_heads = w.heads, w.kv_heads
    h = F.linear(F.rms_norm(x, x.shape[-1:], layer[0], w.eps), layer[1])
    h = h.view(rows, n, heads + 2 * kv_heads, w.head_dim).transpose(1, 2)
    qk = h[:, :heads + kv_heads]
    qk = qk * cos + qk.roll(w.head_dim // 2, -1) * sin
    return qk[:, :heads], qk[:, heads:], h[:, heads + kv_heads:]


def _finish_layer(w: _Weights, layer, x, y):
    """The residual stream after a layer whose attention output (heads merged) is ``y``."""
    _, _, o, ln2, gate_up, down = layer
    x = x + F.linear(y, o)
    g, u = F.linear(F.rms_norm(x, x.shape[-1:], ln2, w.eps), gate_up).chunk(2, dim=-1)
    return x + F.linear(F.silu(g) * u, down)


def _heads(w: _Weights, t):
    return t.repeat_interleave(w.heads // w.kv_heads, dim=1) if w.kv_heads != w.heads else t


def _forward(w: _Weights, tokens, positions, cache, at: int, mask):
    """Logits of the last token of ``tokens [rows, n]``, whose keys and values are written at ``at .. at+n-1``.

    ``mask``: for a prompt (``at == 0``) which tokens each token attends to, ``[rows, 1, n, n]`` (boolean); for
    one new token, ``[rows, 1, 1, at+1]``, 0 where it attends and -inf where not.
    """
    rows, n = tokens.shape
    cos, sin = _rotary(w, positions)
    x = F.embedding(tokens, w.embed)
    end = at + n
    for layer, (k_cache, v_cache) in zip(w.layers, cache):
        q, k, v = _project(w, layer, x, cos, sin)
        k_cache[:, :, at:end] = k
        v_cache[:, :, at:end] = v
        keys, values = _heads(w, k_cache[:, :, :end]), _heads(w, v_cache[:, :, :end])
        if at == 0:
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        else:  # one query per row: two batched matrix-vector products (SDPA's kernel is slower at one query)
            y = torch.matmul(torch.matmul(q * w.scale, keys.transpose(-1, -2)).add_(mask).softmax(-1), values)
        x = _finish_layer(w, layer, x, y.transpose(1, 2).reshape(rows, n, -1))
    return F.linear(F.rms_norm(x[:, -1], x.shape[-1:], w.norm, w.eps), w.lm_head)


def _select(logits, do_sample: bool, temperature: float, top_k: int, top_p: float, live, total: int):
    """The next token per row, as ``generate``'s greedy search or its sampler with its warpers in their order.

    Sampling is Gumbel-max with exponential noise (``argmax(p / q)``, ``q ~ Exp(1)``), which is how
    ``torch.multinomial`` draws one sample on CPU; noise is drawn for all ``total`` rows of the batch as it started
    and read at the rows still in it (``live``), so a seed gives ``generate``'s samples however many rows have left.
    """
    if not do_sample:
        return logits.argmax(-1)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        logits = logits.masked_fill(logits < torch.topk(logits, top_k)[0][..., -1, None], float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        drop = sorted_logits.softmax(-1).cumsum(-1) <= 1 - top_p
        drop[..., -1:] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    noise = torch.empty((total, logits.shape[-1])).exponential_()
    if len(live) < total:
        noise = noise[live]
    return (logits.softmax(-1) / noise).argmax(-1)


@torch.no_grad()
def decode(model, input_ids, attention_mask=None, *, max_new_tokens: int, eos_token_id, pad_token_id: int,
           do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           num_return_sequences: int = 1):
    """``generate``'s output for a left-padded batch: ``[rows * num_return_sequences, prompt + new]`` token ids,
    pad after each row's first EOS, as long as the longest completion."""
    reason = unsupported(model)
    if reason:
        raise ValueError(f"decode: {reason}; use model.generate")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature: expected > 0 when sampling, got {temperature}")
    from .models import position_coupling

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if num_return_sequences > 1:
        input_ids = input_ids.repeat_interleave(num_return_sequences, dim=0)
        attention_mask = attention_mask.repeat_interleave(num_return_sequences, dim=0)
    eos = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or ()), dtype=torch.long)
    w = _Weights(model)
    rows, prompt = input_ids.shape
    width = prompt + max_new_tokens
    # the prompt is run once per distinct row (a group's samples share it) and its cache copied to the group
    unique, group = torch.unique(torch.cat([input_ids, attention_mask], 1), dim=0, return_inverse=True)
    unique_ids, unique_mask = unique[:, :prompt], unique[:, prompt:]
    cache = [(torch.zeros((len(unique), w.kv_heads, width, w.head_dim)),
              torch.zeros((len(unique), w.kv_heads, width, w.head_dim))) for _ in w.layers]
    coupling = position_coupling(model)
    if coupling is not None:
        positions, state = coupling.start(unique_ids, unique_mask)
        advance = coupling.advance
    else:  # generate's positions: the count of real tokens before, 1 on padding
        positions = (unique_mask.cumsum(-1) - 1).masked_fill(unique_mask == 0, 1)
        state = {"position": positions[:, -1]}

        def advance(state, token):
            return {"position": state["position"] + 1}, state["position"] + 1
    state = {k: v[group] for k, v in state.items()}
    # a pad query attends to itself, so that no row of the mask is empty (SDPA returns NaN for one)
    causal = torch.ones((prompt, prompt), dtype=torch.bool).tril()
    mask = (unique_mask.bool()[:, None, :] & causal) | torch.eye(prompt, dtype=torch.bool)
    logits = _forward(w, unique_ids, positions, cache, 0, mask[:, None])[group]
    cache = [(k[group], v[group]) for k, v in cache]
    attend = torch.zeros((rows, 1, 1, width))  # additive mask of the one-token steps: -inf on padding
    attend[:, 0, 0, :prompt].masked_fill_(attention_mask == 0, float("-inf"))
    out = torch.full((rows, max_new_tokens), pad_token_id, dtype=torch.long)
    live = torch.arange(rows)  # the output row of each row in the batch
    running = torch.ones(rows, dtype=torch.bool)  # rows in the batch that have not emitted EOS
    steps = max_new_tokens
    for t in range(max_new_tokens):
        token = _select(logits, do_sample, temperature, top_k, top_p, live, rows)
        out[live[running], t] = token[running]
        running &= ~torch.isin(token, eos)
        alive = int(running.sum())
        if not alive:
            steps = t + 1
            break
        if t == max_new_tokens - 1:
            break
        if alive <= len(running) * 7 // 8:  # drop finished rows (a copy of the cache) once an eighth has finished
            keep = running.nonzero().squeeze(1)
            live, token, attend, running = live[keep], token[keep], attend[keep], running[keep]
            state = {k: v[keep] for k, v in state.items()}
            cache = [(k[keep], v[keep]) for k, v in cache]
        at = prompt + t
        state, position = advance(state, token)
        logits = _forward(w, token[:, None], position[:, None], cache, at, attend[..., :at + 1])
    return torch.cat([input_ids, out[:, :steps]], dim=1)
