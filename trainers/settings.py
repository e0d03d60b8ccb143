"""Run configs in layers: a preset's section < a YAML file < command-line flags, one dataclass per command.

The command line is generated from the dataclass by ``tyro``: every field is a
flag (``--learning-rate``), its docstring is the flag's help, and a nested
:class:`~ffreason_env.ProblemConfig` contributes its own fields under its name
(``--problem.min-steps``: an RL run's ``--max-steps`` counts optimizer steps),
spelt as in ``python -m ffreason_env``. YAML files
and presets hold the same fields, a nested config as a mapping
(``problem: {max_label_offset: 4}``), which is also how a run's
``config.yaml`` records them, so a run's config is a valid ``--config``.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Sequence, TypeVar

import tyro

from ffreason_env.atomic import atomic_write

__all__ = ["OMIT_PREFIX", "load_yaml", "merge", "to_dict", "save_config", "split_flags", "flag_names", "parse_flags"]

T = TypeVar("T")

OMIT_PREFIX = tyro.conf.OmitArgPrefixes
"""Marks a nested config whose fields are flags without its name as a prefix (``ffreason eval``'s ``--samples``)."""


def load_yaml(path: str | None) -> dict[str, Any]:
    """A YAML file's mapping, keys with ``-`` spelt with ``_`` (empty for no path)."""
    if path is None:
        return {}
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config: {path} must hold a mapping of option: value, got {type(data).__name__}")
    return {k.replace("-", "_"): v for k, v in data.items()}


def _nested(cls) -> dict[str, type]:
    """Fields of ``cls`` that are dataclasses themselves (given as mappings in YAML)."""
    import typing

    hints = typing.get_type_hints(cls, include_extras=False)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def merge(cls: type[T], *layers: dict[str, Any]) -> T:
    """``cls`` built from its defaults and the layers, later ones winning; a nested dataclass field merges key by
    key. A key that is not a field is an error naming it."""
    names = {f.name for f in dataclasses.fields(cls)}
    nested = _nested(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in names:
                raise ValueError(f"{key}: unknown option for {cls.__name__} (known: {', '.join(sorted(names))})")
            if key in nested and value is not None:
                if dataclasses.is_dataclass(value):
                    value = to_dict(value)
                if not isinstance(value, dict):
                    raise ValueError(f"{key}: expected a mapping of {nested[key].__name__} fields, got {value!r}")
                values[key] = {**values.get(key, {}), **value}
            elif value is not None:
                values[key] = value
    for key in set(nested) & set(values):
        known = {f.name for f in dataclasses.fields(nested[key])}
        unknown = sorted(set(values[key]) - known)
        if unknown:
            raise ValueError(f"{key}.{unknown[0]}: not a {nested[key].__name__} field (known: {', '.join(sorted(known))})")
        try:
            values[key] = nested[key](**values[key])
        except ValueError as e:
            raise ValueError(f"{key}.{e}") from None
    return cls(**values)


def to_dict(obj: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON data (tuples as lists, nested configs as mappings)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(obj))


def save_config(path: str, command: str, cfg: Any) -> None:
    """``RUN_DIR/config.yaml``: the command, the algorithm of an RL config, and every resolved field, written
    atomically; ``--config`` reads it back."""
    import yaml

    head = {"command": command, **({"algo": cfg.algo} if hasattr(type(cfg), "algo") else {})}
    with atomic_write(path) as f:
        yaml.safe_dump({**head, **to_dict(cfg)}, f, sort_keys=False)


def split_flags(argv: Sequence[str], consumed: Sequence[str], kept: Sequence[str] = ()
                ) -> tuple[dict[str, str | None], list[str]]:
    """What must be known before the parser can be built (``--config``, the preset, the algorithm): the values of
    the ``consumed`` and ``kept`` flags, and ``argv`` without the consumed ones (a kept one is also a field the
    parser records). Abbreviations are not expanded: ``--p`` is the prime, never ``--preset``."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in (*consumed, *kept):
        pre.add_argument("--" + name.replace("_", "-"), dest=name)
    known, _ = pre.parse_known_args(list(argv))
    flags = {"--" + name.replace("_", "-") for name in consumed}
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        elif arg.split("=", 1)[0] not in flags:
            rest.append(arg)
    return {name: getattr(known, name) for name in (*consumed, *kept)}, rest


def flag_names(argv: Sequence[str]) -> list[str]:
    """The field names of the flags in ``argv`` (``--no-lora`` names ``lora``)."""
    names = []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            names += [name, name.removeprefix("no_")] if name.startswith("no_") else [name]
    return names


def parse_flags(cls: type[T], argv: Sequence[str], default: T, prog: str, description: str) -> T:
    """``default`` with the flags in ``argv`` applied (``tyro``); ``--help`` lists every field with its
    docstring and its value in ``default``."""
    return tyro.cli(cls, args=list(argv), default=default, prog=prog, description=description)
