"""Study configs: one ml_collections file per study, each with ``get_config()``.

Every config has a ``preset`` field ("default": small, about a minute on a laptop CPU;
"full": the full size — a size, not a claim that the constants are the papers'; a
preset may be named "paper" only if every constant in it is the paper's).
``apply_preset`` resolves it; explicit ``--config.x=...`` overrides of fields the
preset does not touch are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

__all__ = [
    "apply_preset",
    "check_alpha",
    "check_choice",
    "check_int_fields",
    "check_positive",
    "check_sample_sizes",
]


def apply_preset(
    config: ml_collections.ConfigDict, presets: Mapping[str, Mapping[str, Any]]
) -> ml_collections.ConfigDict:
    """Returns a copy of ``config`` with the fields of ``presets[config.preset]`` set.

    Args:
      config: a study config with a ``preset`` field.
      presets: preset name -> {dotted field name: value}; "default" may be absent (it
        means the config's own values).

    Raises:
      ValueError: unknown preset name.
    """
    name = config.preset
    if name != "default" and name not in presets:
        raise ValueError(
            f"config.preset={name!r} is not one of {sorted({'default', *presets})}"
        )
    resolved = ml_collections.ConfigDict(config.to_dict())
    for field, value in presets.get(name, {}).items():
        node = resolved
        *parents, leaf = field.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return resolved


def check_sample_sizes(config: ml_collections.ConfigDict, minimum: int = 2) -> None:
    """Raises ValueError unless ``config.sample_sizes`` is a non-empty tuple of distinct
    ints >= ``minimum``."""
    sizes = tuple(config.sample_sizes)
    if not sizes or any(
        isinstance(n, bool) or not isinstance(n, int) or n < minimum for n in sizes
    ):
        raise ValueError(
            "config.sample_sizes must be a non-empty tuple of ints >= "
            f"{minimum}, got {sizes}"
        )
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"config.sample_sizes has duplicates: {sizes}")


def _field(config: ml_collections.ConfigDict, name: str):
    """config["a.b"] as config.a.b (dotted names reach nested configs)."""
    for part in name.split("."):
        config = config[part]
    return config


def check_int_fields(
    config: ml_collections.ConfigDict, fields, minimum: int = 1
) -> None:
    """Raises ValueError naming the first of ``fields`` that is not an int >= minimum.

    Field names may be dotted ("paper_start.num_starts")."""
    for field in fields:
        value = _field(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(
                f"config.{field} must be an int >= {minimum}, got {value!r}"
            )


def check_positive(config: ml_collections.ConfigDict, fields) -> None:
    """Raises ValueError naming the first of ``fields`` (dotted names allowed) that is
    not a number > 0."""
    for field in fields:
        value = _field(config, field)
        if isinstance(value, bool) or not value > 0:
            raise ValueError(f"config.{field} must be > 0, got {value!r}")


def check_choice(config: ml_collections.ConfigDict, field: str, choices) -> None:
    """Raises ValueError unless ``config.<field>`` is one of ``choices``."""
    value = _field(config, field)
    if value not in tuple(choices):
        raise ValueError(
            f"config.{field} must be one of {tuple(choices)}, got {value!r}"
        )


def check_alpha(config: ml_collections.ConfigDict, field: str = "alpha") -> None:
    """Raises ValueError unless 0 < ``config.<field>`` < 1 (a test level α)."""
    value = _field(config, field)
    if isinstance(value, bool) or not 0.0 < value < 1.0:
        raise ValueError(f"config.{field} must lie in (0, 1), got {value!r}")
