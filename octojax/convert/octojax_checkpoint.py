"""octojax parameter checkpoints: an orbax PyTree of parameters beside a model_config.json.

This is what `octojax convert import` writes and what training can initialise from. Training
checkpoints (octojax/train) keep their parameters in the same layout under `<step>/params`, so
`load_params` also accepts a training run directory (latest step) or a step directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from octojax.model.config import ModelConfig

CONFIG_FILE = "model_config.json"
log = logging.getLogger(__name__)


def save_params(out_dir: str | Path, cfg: ModelConfig, params: dict) -> Path:
    """Write params (any sharding) with orbax and the model config as JSON."""
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(out_dir / "params", params, force=True)
    ckptr.wait_until_finished()
    (out_dir / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return out_dir


class UnreadableCheckpoint(ValueError):
    """No readable parameters at a checkpoint path (every candidate step failed to restore)."""


def params_candidates(path: str | Path) -> list[tuple[Path, Path]]:
    """[(params directory, model_config.json)] for a params checkpoint, a training step, or a
    training run (its steps newest first, so a reader can fall back to an older good one)."""
    path = Path(path).absolute()
    if (path / "params").is_dir() and (path / CONFIG_FILE).exists():
        return [(path / "params", path / CONFIG_FILE)]
    # a training run: <run>/checkpoints/<step>/params, model_config.json in <run>/checkpoints
    for root in (path, path / "checkpoints"):
        if not root.is_dir() or not (root / CONFIG_FILE).exists():
            continue
        steps = sorted(
            (int(p.name), p) for p in root.glob("*") if p.name.isdigit() and (p / "params").is_dir()
        )
        if steps:
            return [(p / "params", root / CONFIG_FILE) for _, p in reversed(steps)]
    if (path / "params").is_dir() and (path.parent / CONFIG_FILE).exists():
        return [(path / "params", path.parent / CONFIG_FILE)]
    raise FileNotFoundError(
        f"{path}: not an octojax checkpoint (expected params/ and {CONFIG_FILE}, or a training "
        "run's checkpoints/<step>/params)"
    )


def is_octojax_checkpoint(path: str | Path) -> bool:
    """Whether path is an octojax params checkpoint or training run (a model_config.json in it or
    in its checkpoints/): a run's top-level config.json is its training config, not a Hugging Face
    one. A training step directory has no config.json, so it is never taken for Hugging Face."""
    path = Path(path)
    return (path / CONFIG_FILE).exists() or (path / "checkpoints" / CONFIG_FILE).exists()


def find_params_dir(path: str | Path) -> tuple[Path, Path]:
    """(params directory, model_config.json) of the newest candidate (see params_candidates)."""
    return params_candidates(path)[0]


def load_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored beside a checkpoint."""
    _, cfg_file = find_params_dir(path)
    try:
        return ModelConfig(**json.loads(cfg_file.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise UnreadableCheckpoint(f"{cfg_file}: not a valid octojax model config ({e})") from None


def load_params(
    path: str | Path, *, shardings: dict | None = None, dtype: str | None = None
) -> tuple[ModelConfig, dict]:
    """Restore (config, params) from the newest readable step; `shardings` (same tree as params)
    places them onto a mesh. An unreadable step is reported and the one before it is used."""
    cfg = load_config(path)
    failures = []
    for params_dir, _ in params_candidates(path):
        try:
            params = _restore(params_dir, shardings, dtype)
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            failures.append(f"{params_dir}: {type(e).__name__}: {first}")
            log.info(  # the one line users see is printed below, once a step restores
                "cannot restore %s (%s); trying an older step if there is one", params_dir, first
            )
            continue
        if failures:
            print(
                f"[octojax] {len(failures)} newer checkpoint(s) unreadable ({failures[0]}); "
                f"using {params_dir}"
            )
        return cfg, params
    raise UnreadableCheckpoint(f"{path}: no readable parameters ({'; '.join(failures)})")


def _restore(params_dir: Path, shardings: dict | None, dtype: str | None) -> dict:
    ckptr = ocp.StandardCheckpointer()
    meta = ckptr.metadata(params_dir)
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)

    def target(m, s=None):
        return jax.ShapeDtypeStruct(m.shape, dtype or m.dtype, sharding=s)

    if shardings is None:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(lambda m: target(m, device), tree)
    else:
        abstract = jax.tree.map(target, tree, shardings)
    return ckptr.restore(params_dir, abstract)
