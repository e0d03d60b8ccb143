"""compute_score through verl's own code: its reward-function loader and its naive reward manager.

verl is an optional peer (Ray, tensordict and their kin, several hundred MB), so CI does not install it; run
these with ``pip install verl`` beside ffreason: ``python -m pytest tests/test_verl_peer.py``.
"""

import os

import numpy as np
import pytest

verl = pytest.importorskip("verl", reason="verl is an optional peer: pip install verl")
torch = pytest.importorskip("torch")

import ffreason_env as fe  # noqa: E402
import ffreason_env.verl as ffverl  # noqa: E402


class CharTokenizer:
    """Just what verl's reward manager asks of a tokenizer: ``decode``, one character per id."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(int(i)) for i in ids)


def _config(path="pkg://ffreason_env.verl", **reward_kwargs):
    from omegaconf import OmegaConf

    return OmegaConf.create({"reward": {"custom_reward_function": {
        "path": path, "name": "compute_score", "reward_kwargs": reward_kwargs}}})


@pytest.mark.parametrize("path", ["pkg://ffreason_env.verl", os.path.abspath(ffverl.__file__)],
                         ids=["module", "file"])  # the file path is what older verl releases take
def test_verls_loader_finds_compute_score_and_passes_its_reward_kwargs(path):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    fn = get_custom_reward_fn(_config(path, process_weight=0.5))
    row = next(ffverl.verl_records(fe.ProblemConfig(min_steps=3, max_steps=3), seed=1, size=1))
    problem = fe.Problem.from_json(row["extra_info"]["problem"])
    slipped = fe.write_trace(problem, "forward").rsplit("\n", 1)[0] + "\nanswer " + problem.symbol(
        (problem.answer + 1) % problem.p)
    got = fn(data_source=row["data_source"], solution_str=slipped, ground_truth=row["reward_model"]["ground_truth"],
             extra_info=row["extra_info"])
    assert got == ffverl.compute_score(row["data_source"], slipped, row["reward_model"]["ground_truth"],
                                       row["extra_info"], process_weight=0.5)
    assert 0 < got["score"] < 1 and got["acc"] == 0.0  # wrong, with partial process credit


def test_verls_reward_manager_scores_a_mixed_batch_with_one_list_per_key():
    from verl import DataProto
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.workers.reward_manager.naive import NaiveRewardManager

    rows = list(ffverl.verl_records(fe.ProblemConfig(min_steps=2, max_steps=3), seed=4, size=2))
    problems = [fe.Problem.from_json(r["extra_info"]["problem"]) for r in rows]
    responses = [fe.write_trace(problems[0], fe.ALIGNED[problems[0].kind]), "answer e0 e1", "The answer is\n#### 7"]
    sources = [r["data_source"] for r in rows] + ["openai/gsm8k"]
    truths = [r["reward_model"] for r in rows] + [{"style": "rule", "ground_truth": "7"}]
    infos = [dict(r["extra_info"]) for r in rows] + [{"split": "train", "index": 0}]
    prompt_len, width = 4, max(len(t) for t in responses)
    prompts = torch.full((3, prompt_len), 65)
    resp = torch.zeros((3, width), dtype=torch.long)
    mask = torch.zeros((3, prompt_len + width), dtype=torch.long)
    mask[:, :prompt_len] = 1
    for i, text in enumerate(responses):
        resp[i, :len(text)] = torch.tensor([ord(c) for c in text])
        mask[i, prompt_len:prompt_len + len(text)] = 1
    data = DataProto.from_dict(tensors={"prompts": prompts, "responses": resp, "attention_mask": mask},
                               non_tensors={"data_source": np.array(sources, dtype=object),
                                            "reward_model": np.array(truths, dtype=object),
                                            "extra_info": np.array(infos, dtype=object)})
    manager = NaiveRewardManager(tokenizer=CharTokenizer(), num_examine=0,
                                 compute_score=get_custom_reward_fn(_config()))
    out = manager(data, return_dict=True)
    rewards = out["reward_tensor"].sum(-1).tolist()
    extra = out["reward_extra_info"]
    assert set(extra) == set(ffverl.SCORE_KEYS) and all(len(v) == 3 for v in extra.values())
    assert rewards[:2] == [1.0, 0.0] and extra["ffreason"] == [1.0, 1.0, 0.0]
    assert extra[f"strategy_{fe.ALIGNED[problems[0].kind]}"][0] == 1.0 and extra["pred"][1] == ""
    assert rewards[2] == 1.0 and extra["acc"][2] == 1.0  # verl's own gsm8k score of the foreign row
