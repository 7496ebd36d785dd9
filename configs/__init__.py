"""Study configs: one ml_collections file per study, each with ``get_config()``.

Every config has a ``preset`` field ("default": small, about a minute on a laptop CPU;
"paper": the full size). ``apply_preset`` resolves it; explicit ``--config.x=...``
overrides of fields the preset does not touch are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

__all__ = ["apply_preset"]


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
