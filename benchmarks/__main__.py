"""``python -m benchmarks NAME [options]``; ``python -m benchmarks`` lists them."""

import importlib
import sys

BENCHMARKS = {
    "env_throughput": "items/s: generate + render + verify; ffreason vs reasoning-gym",
    "verify_scaling": "verify time vs response length; prompt/trace lengths in tokens and characters",
    "roofline": "matmul rate and bandwidth here; SFT, rollout (generate vs trainers.decoder) and GRPO against them",
    "trainer_overhead": "seconds per GRPO / PPO step; env bridge vs plain TRL",
    "fuzz_verify": "verify / env.step under 10^6 fuzzed responses: crashes, wrong rewards, time per byte",
    "sft_plateau": "when the from-scratch model learns the arithmetic table, per lr / init / batch order",
    "gpu_smoke": "the Qwen path on one GPU: LoRA SFT, GRPO with and without vLLM, one evaluation, peak memory",
    "budget": "each preset's RL generation budget: aligned traces that fit and searches cut, in its tokenizer",
    "probe_cost": "what the strategy probes add to an evaluation and to a default RL run",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: python -m benchmarks NAME [options]   (NAME --help for its options)\n")
        for name, what in BENCHMARKS.items():
            print(f"  {name:<20} {what}")
        return
    name = sys.argv[1]
    if name not in BENCHMARKS:
        sys.exit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    importlib.import_module(f"benchmarks.{name}").main(sys.argv[2:])


main()
