"""AdamW with warm-up + decay schedules, global-norm clipping, and weight decay masked off
biases and LayerNorm parameters (optax)."""

from __future__ import annotations

import jax
import optax

from octojax.train.config import OptimizerSection


def learning_rate_schedule(cfg: OptimizerSection, total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to cfg.lr, then cosine / linear decay to lr * final_lr_ratio, or flat."""
    final = cfg.lr * cfg.final_lr_ratio
    decay_steps = max(total_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(cfg.lr, decay_steps, alpha=cfg.final_lr_ratio)
    elif cfg.schedule == "linear":
        decay = optax.linear_schedule(cfg.lr, final, decay_steps)
    else:
        decay = optax.constant_schedule(cfg.lr)
    if cfg.warmup_steps == 0:
        return decay
    warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
    return optax.join_schedules([warmup, decay], [cfg.warmup_steps])


def decay_mask(params) -> object:
    """True for weight matrices and embeddings; False for biases and LayerNorm scales."""

    def is_decayed(path, leaf) -> bool:
        name = str(getattr(path[-1], "key", path[-1]))
        return not (name.endswith("_bias") or "ln_" in name or name in ("bias",))

    return jax.tree_util.tree_map_with_path(is_decayed, params)


def make_optimizer(cfg: OptimizerSection, total_steps: int) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(cfg, total_steps)
    parts = []
    if cfg.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip))
    parts.append(
        optax.adamw(
            schedule,
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=decay_mask,
        )
    )
    return optax.chain(*parts)
