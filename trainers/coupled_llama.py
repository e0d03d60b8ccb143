"""A Llama whose position ids are coupled to the task's step labels (:mod:`trainers.positions`).

Only the position ids differ from ``LlamaForCausalLM``: the weights, attention
and rotary embedding are Llama's. The backbone computes the positions from
the tokens wherever the caller gives none, so ``generate``, TRL's trainers
(whose fused log-prob head calls the backbone directly) and our PPO use the
model unchanged. The model type is registered with the ``Auto`` classes when
this module is imported (:func:`trainers.models.load_model` does), so a saved
model reloads with ``AutoModelForCausalLM``.
"""

from __future__ import annotations

import types

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, LlamaModel

from .positions import PositionCoupling

__all__ = ["CoupledLlamaConfig", "CoupledLlamaModel", "CoupledLlamaForCausalLM"]


class CoupledLlamaConfig(LlamaConfig):
    model_type = "ffreason_coupled_llama"
    position_coupling: dict | None = None
    """:meth:`PositionCoupling.to_dict` of the model's tokenizer."""
    auto_map = types.MappingProxyType({})
    """No remote code: the Auto classes know the type once this module is imported. TRL reads ``config.auto_map``
    to load a reference model (``beta`` > 0) of an architecture transformers does not name, and a config without
    the attribute raises there."""


def _plain_mask(attention_mask):
    return attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None


class CoupledLlamaModel(LlamaModel):
    config_class = CoupledLlamaConfig

    def __init__(self, config: CoupledLlamaConfig):
        super().__init__(config)
        if config.position_coupling is None:
            raise ValueError("CoupledLlamaConfig.position_coupling: required (PositionCoupling.from_tokenizer(...).to_dict())")
        self.coupling = PositionCoupling.from_dict(config.position_coupling)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, **kwargs):
        if position_ids is None and input_ids is not None:
            if past_key_values is not None and past_key_values.get_seq_length() > 0:
                raise ValueError("coupled positions depend on the whole sequence: with a cache, pass position_ids "
                                 "(generate does, through prepare_inputs_for_generation)")
            position_ids = self.coupling.position_ids(input_ids, _plain_mask(attention_mask))
            if attention_mask is None:  # else transformers reads the positions' jumps as packed sequences
                attention_mask = torch.ones_like(input_ids)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               past_key_values=past_key_values, **kwargs)


class CoupledLlamaForCausalLM(LlamaForCausalLM):
    config_class = CoupledLlamaConfig

    def __init__(self, config: CoupledLlamaConfig):
        super().__init__(config)
        self.model = CoupledLlamaModel(config)
        self.post_init()

    @property
    def coupling(self) -> PositionCoupling:
        return self.model.coupling

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        inputs = super().prepare_inputs_for_generation(input_ids, attention_mask=attention_mask, **kwargs)
        new = inputs["input_ids"]
        if new is not None:  # the positions of the tokens fed this step, computed from all tokens so far
            inputs["position_ids"] = self.coupling.position_ids(input_ids, _plain_mask(attention_mask))[:, -new.shape[1]:]
        return inputs


AutoConfig.register(CoupledLlamaConfig.model_type, CoupledLlamaConfig)
AutoModelForCausalLM.register(CoupledLlamaConfig, CoupledLlamaForCausalLM)
