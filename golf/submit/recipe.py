"""What a submission's recipe is: every setting of its run's config that differs from the challenge's baseline run
(`experiment=baseline`: conf/experiment/baseline.yaml), as key -> value in config order."""

from __future__ import annotations

from typing import Any

from golf.submit.standalone_config import StandaloneConfig, standalone_dict

BASELINE_OVERRIDES = ("experiment=baseline", "data.path=data/datasets/fineweb10B_sp1024")
IGNORED = ("name", "seed", "data.path", "data.shards_dir", "data.tokenizer")  # not how the model was made


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def baseline_settings() -> dict[str, Any]:
    """The baseline run's settings, flattened (composed as golf.train would compose them)."""
    from golf.cli import compose
    from golf.config import to_golf_config

    return flatten(standalone_dict(to_golf_config(compose(list(BASELINE_OVERRIDES)))))


def recipe(config: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The settings of `config` (a run's config.yaml) that differ from `baseline` (baseline_settings())."""
    parts = set(standalone_dict(StandaloneConfig()))  # what a run's outcome depends on (not paths, logger, ...)
    run = flatten({key: value for key, value in config.items() if key in parts})
    return {key: value for key, value in run.items()
            if key not in IGNORED and baseline.get(key, object()) != value}
