"""Run configs: a dataclass per command, filled from preset < YAML file < command-line flags."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["load_yaml", "merge", "to_dict"]

T = TypeVar("T")


def load_yaml(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config: {path} must hold a mapping of option: value, got {type(data).__name__}")
    return {k.replace("-", "_"): v for k, v in data.items()}


def merge(cls: type[T], *layers: dict[str, Any]) -> T:
    """``cls(**defaults | layer1 | layer2 ...)``; a key that is not a field of ``cls`` is an error naming it."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in names:
                raise ValueError(f"{key}: unknown option for {cls.__name__} (known: {', '.join(sorted(names))})")
            if value is not None:
                values[key] = value
    return cls(**values)


def to_dict(obj: Any) -> dict[str, Any]:
    d = dataclasses.asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
