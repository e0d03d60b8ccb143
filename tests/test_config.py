import pytest

from ffreason_env import ProblemConfig


def test_defaults_are_the_study_setting():
    c = ProblemConfig()
    assert (c.p, c.min_steps, c.max_steps, c.ops) == (11, 2, 5, ("add", "mul"))
    assert c.problem_types == ("evaluation", "inversion")
    assert c.symbols.names == tuple(f"e{i}" for i in range(11))
    # the seeded permutation is not the identity: eK does not mean K
    assert any(c.symbols.symbol(v) != f"e{v}" for v in range(11))


def test_lists_become_tuples_and_config_is_hashable():
    c = ProblemConfig(ops=["add", "sub"], problem_types=["inversion"])
    assert c.ops == ("add", "sub") and c.problem_types == ("inversion",)
    assert hash(c) == hash(ProblemConfig(ops=("add", "sub"), problem_types=("inversion",)))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"p": 4}, "p"),
        ({"p": 1}, "p"),
        ({"p": 11.0}, "p"),
        ({"p": True}, "p"),
        ({"min_steps": 0}, "min_steps"),
        ({"min_steps": 6, "max_steps": 5}, "min_steps"),
        ({"max_steps": 10**6}, "max_steps"),
        ({"ops": []}, "ops"),
        ({"ops": ["add", "pow"]}, "ops"),
        ({"ops": "add"}, "ops"),
        ({"ops": ["add", "add"]}, "ops"),
        ({"problem_types": []}, "problem_types"),
        ({"problem_types": ["riddle"]}, "problem_types"),
        ({"type_weights": [1.0]}, "type_weights"),
        ({"type_weights": [-1.0, 2.0]}, "type_weights"),
        ({"type_weights": [0, 0]}, "type_weights"),
        ({"type_weights": [float("nan"), 1]}, "type_weights"),
        ({"min_parts": 1}, "min_parts"),
        ({"min_parts": 4, "max_parts": 3}, "min_parts"),
        ({"part_types": ["composition"]}, "part_types"),
        ({"symbol_prefix": ""}, "symbol_prefix"),
        ({"symbol_prefix": "x"}, "symbol_prefix"),
        ({"symbol_prefix": "a b"}, "symbol_prefix"),
        ({"p": 3, "symbol_names": ["a", "b"]}, "symbol_names"),
        ({"p": 3, "symbol_names": ["a", "a", "b"]}, "symbol_names"),
        ({"p": 3, "symbol_names": ["a", "step", "b"]}, "symbol_names"),
        ({"p": 3, "symbol_names": ["a", "7", "b"]}, "symbol_names"),
        ({"symbol_seed": -1}, "symbol_seed"),
        ({"max_label_offset": -1}, "max_label_offset"),
        ({"max_part_offset": -1}, "max_part_offset"),
        ({"max_part_offset": 1.5}, "max_part_offset"),
        ({"shuffle_symbols": "yes"}, "shuffle_symbols"),
    ],
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        ProblemConfig(**kwargs)


def test_validate_is_callable_and_passes_on_valid():
    ProblemConfig(p=13, ops=["add", "sub", "mul", "div"]).validate()


def test_from_dict_rejects_unknown_keys_and_round_trips():
    c = ProblemConfig(p=13, type_weights=[3, 1])
    assert ProblemConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="^steps: not a ProblemConfig field"):
        ProblemConfig.from_dict({"steps": 3})
    with pytest.raises(ValueError, match="^max_step: not a ProblemConfig field"):
        c.replace(max_step=3)


def test_custom_symbol_names_and_vocabulary():
    c = ProblemConfig(p=3, symbol_names=["red", "green", "blue"], shuffle_symbols=False)
    assert [c.symbols.symbol(v) for v in range(3)] == ["red", "green", "blue"]
    vocab = c.vocabulary()
    assert {"red", "green", "blue", "GF(3)", "x5", "5", "step", "try", "answer"} <= set(vocab)
    assert len(vocab) == len(set(vocab))


def test_every_config_field_has_the_docstring_its_help_shows():
    """``--help`` is generated from the field docstrings: a field without one would be a flag without help."""
    import dataclasses

    pytest.importorskip("tyro")
    from baselines.cli import ReportConfig, ReproduceConfig
    from ffreason_env.cli import _field_docs
    from trainers.evaluation import EvalRunConfig, EvalSettings
    from trainers.rl_config import ALGORITHMS
    from trainers.sft import SFTRunConfig

    for cls in (ProblemConfig, SFTRunConfig, *ALGORITHMS.values(), EvalSettings, EvalRunConfig, ReproduceConfig,
                ReportConfig):
        docs = {}
        for base in reversed(cls.__mro__[:-1]):
            if dataclasses.is_dataclass(base):
                docs.update(_field_docs(base))
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in docs]
        assert missing == [], cls.__name__
