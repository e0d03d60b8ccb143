import subprocess
import sys


def test_import_does_not_pull_torch_or_transformers():
    code = (
        "import sys, ffreason_env, gymnasium;"
        "gymnasium.make('ffreason/Mixed-v0').reset(seed=0);"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_exported():
    import ffreason_env

    for name in ["ProblemConfig", "Problem", "generate", "ProblemSet", "render_prompt", "write_trace", "verify",
                 "Verdict", "outcome_reward", "format_penalty", "process_score", "sft_records", "rl_records"]:
        assert name in ffreason_env.__all__ and hasattr(ffreason_env, name)
