"""Every benchmark runs end to end at tiny sizes, so none can rot; no timing is asserted here.

Results go to a temporary folder, never into benchmarks/results or the docs.
The reasoning-gym arms need the ``bench`` extra and are skipped without it.
"""

import json
import pathlib
import re

import pytest

from benchmarks import (budget, common, env_throughput, gpu_smoke, probe_cost, roofline, sft_plateau, trainer_overhead,
                        verify_scaling)

DOCS = pathlib.Path(common.DOCS)
PERFORMANCE = ("env_throughput", "verify_scaling", "roofline", "trainer_overhead", "probe_cost")
"""The benchmarks whose tables docs/performance.md shows."""


def _pages():
    return {page: page.read_text() for page in sorted(DOCS.glob("*.md"))}


def _run(module, name, tmp_path, *args):
    """Run a benchmark's command line into tmp_path; return its JSON and markdown, checking the docs stay as they were."""
    pages = _pages()
    module.main([*args, "--out", str(tmp_path)])
    assert _pages() == pages
    res = json.loads((tmp_path / f"{name}.json").read_text())
    assert res["benchmark"] == name and res["machine"]["cpus"] >= 1
    return res, (tmp_path / f"{name}.md").read_text()


def test_env_throughput_ffreason_arms(tmp_path):
    res, md = _run(env_throughput, "env_throughput", tmp_path, "--n", "24", "--repeats", "2", "--num-envs", "4",
                   "--arms", *env_throughput.FF_ARMS)
    ips = res["items_per_second"]
    assert set(ips) == set(env_throughput.FF_ARMS)
    assert all(b["n"] == 2 and 0 < b["min"] <= b["median"] <= b["max"] for b in ips.values())
    assert res["ratios"] == {}
    assert md.count("\n| ffreason ") == len(env_throughput.FF_ARMS)


def test_env_throughput_against_reasoning_gym(tmp_path):
    pytest.importorskip("reasoning_gym")
    res, md = _run(env_throughput, "env_throughput", tmp_path, "--n", "20", "--repeats", "1",
                   "--arms", "scalar", *env_throughput.RG_TASKS)
    assert set(res["ratios"]) == {f"scalar_over_{task}" for task in env_throughput.RG_TASKS}
    ips, per_item, gcd = res["items_per_second"], res["item_microseconds"], res["ratios"]["scalar_over_gcd"]
    assert gcd["throughput"] == pytest.approx(ips["scalar"]["median"] / ips["gcd"]["median"])
    assert gcd["median_item"] == pytest.approx(per_item["gcd"]["median"] / per_item["scalar"]["median"])
    assert "| reasoning-gym gcd" in md and "basic_arithmetic **" in md


def test_a_response_scored_wrong_stops_the_benchmark():
    with pytest.raises(RuntimeError, match="1 of 5"):
        env_throughput._checked("scalar", 4, 5)


def test_verify_scaling(tmp_path):
    res, md = _run(verify_scaling, "verify_scaling", tmp_path, "--steps", "1-3", "--n", "4", "--repeats", "1")
    cells = res["cells"]
    assert len(cells) == 2 * 2 * 3 and set(res["fits"]) == {"evaluation/forward", "evaluation/backward",
                                                            "inversion/forward", "inversion/backward"}
    for c in cells:
        direct = c["strategy"] == {"evaluation": "forward", "inversion": "backward"}[c["kind"]]
        if direct:  # one line per step plus the answer
            assert c["lines"] == c["steps"] + 1
        assert c["trace_tokens"]["mean"] <= c["trace_tokens"]["max"] and c["trace_chars"]["max"] >= c["bytes"] > 0
    prompts = [c["prompt_tokens"]["mean"] for c in cells if c["kind"] == "evaluation" and c["strategy"] == "forward"]
    assert prompts == sorted(set(prompts))  # one more prompt line per step
    assert len(re.findall(r"^\| [123] \| ", md, re.M)) == 2 * 3  # the token and the character tables


def test_roofline(tmp_path):
    res, md = _run(roofline, "roofline", tmp_path, "--preset", "micro", "--repeats", "1", "--sft-steps", "2",
                   "--grpo-steps", "1", "--steps", "2-3")
    ro, s = res["rollout"], res["settings"]
    assert res["sft"]["steps"] == 2 and 0 < res["sft"]["fraction_of_attainable"]
    assert ro["same_greedy_tokens"] is True  # the decoder's tokens are generate's
    assert ro["decoder"]["seconds_per_batch"]["n"] == 1 and res["grpo"]["decoder"]["n"] == 1
    assert 1 <= ro["tokens_per_completion"] <= s["max_completion_length"]
    assert "| rollout, trainers.decoder |" in md and "Greedy tokens identical: yes" in md


def test_roofline_counts_every_matmul_of_the_model(tmp_path):
    from trainers.models import build_tiny_model

    model, _ = build_tiny_model("micro", str(tmp_path))
    weights = [p for name, p in model.named_parameters() if name.endswith("proj.weight")] + [model.lm_head.weight]
    assert sum(k * n for k, n in roofline.linear_shapes(model.config)) == sum(w.numel() for w in weights)


def test_trainer_overhead(tmp_path):
    res, md = _run(trainer_overhead, "trainer_overhead", tmp_path, "--preset", "micro", "--steps", "2", "--repeats",
                   "1", "--threads", "1")
    assert all(res[arm]["n"] == 1 for arm in ("bridge", "plain", "ppo"))
    assert res["ratio_bridge_over_plain"] == pytest.approx(res["bridge"]["median"] / res["plain"]["median"])
    assert "Bridge / plain step time" in md


def test_probe_cost(tmp_path):
    res, md = _run(probe_cost, "probe_cost", tmp_path, "--preset", "micro", "--repeats", "1", "--train-steps", "3")
    assert all(res[arm]["n"] == 1 for arm in ("greedy", "probe_set", "both")) and res["step"]["n"] == 2
    s = res["settings"]
    want = s["evaluations"] * (res["both"]["median"] - res["greedy"]["median"]) / (
        s["max_steps"] * res["step"]["median"] + s["evaluations"] * res["greedy"]["median"])
    assert res["run_overhead_both"] == pytest.approx(want) and "slower with the probes" in md


def test_sft_plateau(tmp_path):
    res, md = _run(sft_plateau, "sft_plateau", tmp_path, "--preset", "micro", "--iters", "4", "--eval-every", "2",
                   "--seeds", "0", "--settings", "lr=1e-3", "lr=2e-3,initializer_range=0.05,order=length",
                   "--traces", "all")
    runs = res["runs"]
    assert res["settings"]["traces"] == "all" and "searches included" in md
    assert list(runs) == ["lr=1e-3", "lr=2e-3,initializer_range=0.05,order=length"]
    assert [step for step, _ in runs["lr=1e-3"][0]["curve"]] == [2, 4]
    assert all(0.0 <= acc <= 1.0 for r in runs.values() for _, acc in r[0]["curve"])
    assert "| lr=1e-3 |" in md
    assert sft_plateau.parse_setting("lr=5e-4,num_attention_heads=8,order=shape") == {
        "lr": 5e-4, "num_attention_heads": 8, "order": "shape"}
    with pytest.raises(ValueError, match="order"):
        sft_plateau.parse_setting("order=sorted")


def test_budget(tmp_path):
    res, md = _run(budget, "budget", tmp_path, "--presets", "tiny", "qwen1.5b", "--steps", "6-9", "--n", "40")
    tiny, qwen = res["rows"]
    assert (tiny["budget"], tiny["budget_ratio"]) == (96, 0.0) and qwen["budget_ratio"] == 1.15
    assert qwen["budget"] >= qwen["longest_aligned"] and qwen["aligned_fit"] == 1.0  # the ratio fits every one
    assert all(0 <= r["aligned_fit"] <= 1 and 0 <= r["search_cut"] <= 1 for r in res["rows"])
    assert "| qwen1.5b | byte-level BPE stand-in" in md


def test_gpu_smoke_runs_its_parts_on_a_cpu(tmp_path):
    res, md = _run(gpu_smoke, "gpu_smoke", tmp_path, "--device", "cpu", "--shape", "micro", "--sft-steps", "2",
                   "--grpo-steps", "1", "--eval-n", "2", "--work", str(tmp_path / "work"))
    assert res["sft"]["steps"] == 2 and res["grpo"]["steps"] == 1 and res["grpo_vllm"] is None
    assert res["grpo"]["eval_problems"] == 4 and res["grpo"]["eval_seconds"] > 0
    assert "| LoRA SFT | 2 |" in md and "GRPO, vLLM colocated | not run" in md


def test_the_docs_quote_the_results_files_as_written():
    included = []
    for page, text in _pages().items():
        for name in re.findall(r"<!-- include results/(\w+)\.md -->", text):
            md = pathlib.Path(common.RESULTS, f"{name}.md")
            assert common.include_block(name, md.read_text()) in text, f"{page.name} is out of date for {md.name}"
            included.append((page.name, name))
    assert {name for page, name in included if page == "performance.md"} == set(PERFORMANCE)


def test_include_in_docs_replaces_only_its_blocks(tmp_path):
    doc, other = tmp_path / "doc.md", tmp_path / "other.md"
    doc.write_text(f"intro\n{common.include_block('a', 'old a')}\nmiddle\n{common.include_block('b', 'old b')}\n")
    other.write_text("no blocks\n")
    assert common.include_in_docs("a", "new a\n", str(tmp_path)) == [str(doc)]
    assert doc.read_text() == f"intro\n{common.include_block('a', 'new a')}\nmiddle\n{common.include_block('b', 'old b')}\n"
    assert common.include_in_docs("c", "x", str(tmp_path)) == [] and other.read_text() == "no blocks\n"
