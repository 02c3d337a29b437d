"""octojax parameter checkpoints: an orbax PyTree of parameters beside a model_config.json.

This is what `octojax convert import` writes and what training can initialise from. Training
checkpoints (octojax/train) keep their parameters in the same layout under `<step>/params`, so
`load_params` also accepts a training run directory (latest step) or a step directory.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from octojax.model.config import ModelConfig

CONFIG_FILE = "model_config.json"


def save_params(out_dir: str | Path, cfg: ModelConfig, params: dict) -> Path:
    """Write params (any sharding) with orbax and the model config as JSON."""
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(out_dir / "params", params, force=True)
    ckptr.wait_until_finished()
    (out_dir / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return out_dir


def find_params_dir(path: str | Path) -> tuple[Path, Path]:
    """(params directory, model_config.json) for a params checkpoint, a training step or run dir."""
    path = Path(path).absolute()
    if (path / "params").is_dir() and (path / CONFIG_FILE).exists():
        return path / "params", path / CONFIG_FILE
    # a training run: <run>/checkpoints/<step>/params, model_config.json in <run>/checkpoints
    for root in (path, path / "checkpoints"):
        steps = (
            sorted(
                (int(p.name), p)
                for p in root.glob("*")
                if p.name.isdigit() and (p / "params").is_dir()
            )
            if root.is_dir()
            else []
        )
        if steps and (root / CONFIG_FILE).exists():
            return steps[-1][1] / "params", root / CONFIG_FILE
    if (path / "params").is_dir() and (path.parent / CONFIG_FILE).exists():
        return path / "params", path.parent / CONFIG_FILE
    raise FileNotFoundError(
        f"{path}: not an octojax checkpoint (expected params/ and {CONFIG_FILE}, or a training "
        "run's checkpoints/<step>/params)"
    )


def load_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored beside a checkpoint."""
    _, cfg_file = find_params_dir(path)
    try:
        return ModelConfig(**json.loads(cfg_file.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{cfg_file}: not a valid octojax model config ({e})") from None


def load_params(
    path: str | Path, *, shardings: dict | None = None, dtype: str | None = None
) -> tuple[ModelConfig, dict]:
    """Restore (config, params); `shardings` (same tree as params) places them onto a mesh."""
    params_dir, _ = find_params_dir(path)
    cfg = load_config(path)
    ckptr = ocp.StandardCheckpointer()
    meta = ckptr.metadata(params_dir)
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)

    def target(m, s=None):
        dt = dtype or m.dtype
        return jax.ShapeDtypeStruct(m.shape, dt, sharding=s)

    if shardings is None:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(lambda m: target(m, device), tree)
    else:
        abstract = jax.tree.map(target, tree, shardings)
    try:
        params = ckptr.restore(params_dir, abstract)
    except Exception as e:  # orbax raises many types; name the directory
        raise ValueError(
            f"{params_dir}: cannot restore parameters ({type(e).__name__}: {e})"
        ) from e
    return cfg, params
