"""Items per second on one core: generate a problem, render its prompt, verify a correct response.

ffreason through its scalar API (``generate``, ``render_prompt``, ``verify``),
a gym env (``reset`` + ``step``) and a vector env (``gymnasium.make_vec``,
sync, same-step autoreset), next to reasoning-gym's nearest tasks
(``basic_arithmetic``, ``gcd``: ``dataset[i]`` + ``score_answer``) in the same
run. Within each repeat the arms run one after another, so load on the machine
hits them alike; items/s counts CPU seconds of this process, and the median
time per item, in wall time, is too short to be preempted often, so neither
counts other work on a shared machine. The correct responses (reference traces of the aligned
strategy) are written before the clock starts, as a policy writes them in
training; the ``+ write_trace`` row times the trace writer too (the SFT data
path). Every arm checks that every response was scored correct.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import statistics
import time
from typing import Callable, NamedTuple

from .common import RESULTS, steps_range, summary, write

SEED = 0
RG_TASKS = ("basic_arithmetic", "gcd")
FF_ARMS = ("scalar", "scalar_trace", "gym", "vector")
LABELS = {
    "scalar": "ffreason scalar: generate + render_prompt + verify",
    "scalar_trace": "ffreason scalar + write_trace",
    "gym": "ffreason gym: env.reset + env.step",
    "vector": "ffreason gymnasium.make_vec ({envs} envs, sync)",
    "basic_arithmetic": "reasoning-gym basic_arithmetic: dataset[i] + score_answer",
    "gcd": "reasoning-gym gcd: dataset[i] + score_answer",
}


class Arm(NamedTuple):
    """``item(j)`` does call j (``per_call`` items) and returns how many of its responses scored correct."""

    item: Callable[[int], int]
    calls: int
    per_call: int = 1
    before: Callable[[], object] = lambda: None


def _time(name: str, arm: Arm) -> tuple[float, list[float]]:
    """CPU seconds of this process for every call of the arm, and each call's wall seconds per item."""
    clock, item, per_call = time.perf_counter, arm.item, arm.per_call
    arm.before()
    times, correct = [], 0
    start = time.process_time()
    for j in range(arm.calls):
        t = clock()
        correct += item(j)
        times.append((clock() - t) / per_call)
    elapsed = time.process_time() - start
    _checked(name, correct, arm.calls * per_call)
    return elapsed, times


def _checked(name: str, correct: int, n: int) -> None:
    if correct != n:
        raise RuntimeError(f"{name}: {n - correct} of {n} correct responses were not scored correct")


def _scalar_arms(config, n: int) -> tuple[dict[str, Arm], list[str]]:
    """The two scalar arms, and the responses they verify (item i's aligned trace)."""
    from ffreason_env import ALIGNED, generate, render_prompt, verify, write_trace

    responses = []
    for i in range(n):
        problem = generate(config, SEED, i)
        responses.append(write_trace(problem, ALIGNED[problem.kind]))

    def scalar(i: int) -> int:
        problem = generate(config, SEED, i)
        render_prompt(problem)
        return verify(problem, responses[i]).correct

    def scalar_trace(i: int) -> int:
        problem = generate(config, SEED, i)
        render_prompt(problem)
        return verify(problem, write_trace(problem, ALIGNED[problem.kind])).correct

    return {"scalar": Arm(scalar, n), "scalar_trace": Arm(scalar_trace, n)}, responses


def _gym_arm(env_kwargs: dict, responses: list[str]) -> Arm:
    import gymnasium as gym

    env = gym.make("ffreason/Mixed-v0", problem_seed=SEED, **env_kwargs)
    env.reset(seed=SEED)  # the env checker's first-call checks stay out of the clock

    def item(i: int) -> int:
        env.reset(options={"index": i})
        return env.step(responses[i])[4]["correct"]

    return Arm(item, len(responses))


def _vector_arm(env_kwargs: dict, n: int, num_envs: int) -> Arm:
    """Each step verifies one response per sub-env and resets it; the responses are the traces of the
    problems a dry run with the same seed drew."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    from ffreason_env import ALIGNED, write_trace

    venv = gym.make_vec("ffreason/Mixed-v0", num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, problem_seed=SEED, **env_kwargs)
    venv.reset(seed=SEED)
    actions = []
    for _ in range(max(1, n // num_envs)):
        actions.append(tuple(write_trace(p, ALIGNED[p.kind]) for p in (e.unwrapped.problem for e in venv.envs)))
        venv.step(actions[-1])

    def item(j: int) -> int:
        return int(venv.step(actions[j])[4]["final_info"]["correct"].sum())

    return Arm(item, len(actions), num_envs, lambda: venv.reset(seed=SEED))


def _rg_arm(name: str, n: int) -> Arm:
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(name, size=n, seed=SEED)

    def item(i: int) -> int:
        entry = dataset[i]
        return dataset.score_answer(entry["answer"], entry) == 1.0

    return Arm(item, n)


def reasoning_gym_available() -> bool:
    return importlib.util.find_spec("reasoning_gym") is not None


def run(n: int, repeats: int, steps: tuple[int, int], num_envs: int, arms: tuple[str, ...]) -> dict:
    """Items/s per arm (median over ``repeats`` passes of ``n`` items) and ffreason scalar / reasoning-gym ratios."""
    from ffreason_env import ProblemConfig

    env_kwargs = {"min_steps": steps[0], "max_steps": steps[1]}
    config = ProblemConfig(**env_kwargs)
    scalar, responses = _scalar_arms(config, n)
    built: dict[str, Arm] = {}
    for arm in arms:
        if arm in scalar:
            built[arm] = scalar[arm]
        elif arm == "gym":
            built[arm] = _gym_arm(env_kwargs, responses)
        elif arm == "vector":
            built[arm] = _vector_arm(env_kwargs, n, num_envs)
        elif arm in RG_TASKS:
            built[arm] = _rg_arm(arm, n)
        else:
            raise ValueError(f"arms: unknown arm {arm!r}; known: {FF_ARMS + RG_TASKS}")
    rates: dict[str, list[float]] = {arm: [] for arm in arms}
    item_times: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(repeats):
        for arm in arms:
            elapsed, times = _time(arm, built[arm])
            rates[arm].append(built[arm].calls * built[arm].per_call / elapsed)
            item_times[arm] += times
    out: dict = {"items_per_second": {arm: summary(r) for arm, r in rates.items()},
                 "item_microseconds": {arm: {"median": statistics.median(t) * 1e6, "max": max(t) * 1e6}
                                       for arm, t in item_times.items()}}
    ips, per_item = out["items_per_second"], out["item_microseconds"]
    out["ratios"] = {f"scalar_over_{task}": {"throughput": ips["scalar"]["median"] / ips[task]["median"],
                                              "median_item": per_item[task]["median"] / per_item["scalar"]["median"]}
                     for task in RG_TASKS if task in arms and "scalar" in arms}
    out["settings"] = {"n": n, "repeats": repeats, "steps": list(steps), "num_envs": num_envs, "seed": SEED,
                       "env": "ffreason/Mixed-v0", "p": config.p, "ffreason": importlib.metadata.version("ffreason"),
                       "reasoning_gym": importlib.metadata.version("reasoning-gym") if reasoning_gym_available() else None}
    return out


def table(res: dict) -> str:
    s, ips, per_item = res["settings"], res["items_per_second"], res["item_microseconds"]
    rows = ["| path | items/s (median) | min | max | median µs per item | slowest item (ms) |",
            "|---|---|---|---|---|---|"]
    for arm, b in ips.items():
        rows.append(f"| {LABELS[arm].format(envs=s['num_envs'])} | {b['median']:,.0f} | {b['min']:,.0f} | "
                    f"{b['max']:,.0f} | {per_item[arm]['median']:.1f} | {per_item[arm]['max'] / 1000:.2f} |")
    rows.append("")
    if res["ratios"]:
        rows.append("ffreason scalar path / reasoning-gym (" + s["reasoning_gym"] + "): "
                    + "; ".join(f"{k.removeprefix('scalar_over_')} **{v['throughput']:.2f}x** in items/s, "
                                f"**{v['median_item']:.2f}x** on the median item" for k, v in res["ratios"].items())
                    + ".")
    elif s["reasoning_gym"] is None:
        rows.append("reasoning-gym is not installed (`pip install -e '.[bench]'`): its rows are left out.")
    rows.append(f"Items 0-{s['n'] - 1} of each stream, {s['repeats']} repeats, one Python thread; items/s per CPU "
                f"second of the process, µs per item in wall time. ffreason: Mixed-v0 over GF({s['p']}), "
                f"{s['steps'][0]}-{s['steps'][1]} steps, aligned-strategy traces.")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks env_throughput", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="items per repeat and arm")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=steps_range, default=(2, 5), help="ffreason chain lengths, e.g. 2-5")
    ap.add_argument("--num-envs", type=int, default=8, help="sub-envs of the vector env")
    ap.add_argument("--arms", nargs="+", choices=FF_ARMS + RG_TASKS,
                    help="default: every ffreason arm, plus reasoning-gym's when it is installed")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    arms = tuple(args.arms or (FF_ARMS + (RG_TASKS if reasoning_gym_available() else ())))
    res = run(args.n, args.repeats, args.steps, args.num_envs, arms)
    path = write("env_throughput", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")
