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

__all__ = ["apply_preset", "check_int_fields", "check_sample_sizes"]


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


def check_int_fields(
    config: ml_collections.ConfigDict, fields, minimum: int = 1
) -> None:
    """Raises ValueError naming the first of ``fields`` that is not an int >= minimum."""
    for field in fields:
        value = config[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(
                f"config.{field} must be an int >= {minimum}, got {value!r}"
            )
