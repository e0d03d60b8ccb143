"""trainers: models, SFT, evaluation (and the RL algorithms) driving language models through ffreason_env.

Needs the ``train`` extra (torch, transformers, TRL). Submodules import their
heavy dependencies lazily, so ``ffreason --help`` stays fast.
"""
