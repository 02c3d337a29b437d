"""The step loop never waits for the step it just dispatched: metrics are fetched one step late."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from octojax.train.metrics import DelayedMetrics


def test_each_steps_metrics_are_fetched_only_after_the_next_step_is_queued():
    fetched, emitted = [], []

    def fetch(m):
        fetched.append(int(m["step"]))
        return jax.device_get(m)

    def record(step, m, shape):
        return {"step": step, "loss": float(m["loss"]), "shape": shape}

    delayed = DelayedMetrics(record, emitted.append, fetch=fetch)
    step = jax.jit(lambda i: {"step": i, "loss": jnp.float32(i) / 2})
    for i in range(1, 6):
        delayed.submit(i, step(i), (4, 32))  # dispatched; its metrics stay on the device
        assert fetched == list(range(1, i)), "fetched the step just dispatched"
        assert delayed.pending[0] == i  # exactly one step pending
    delayed.flush()
    assert fetched == [1, 2, 3, 4, 5] and delayed.pending is None
    assert [r["step"] for r in emitted] == [1, 2, 3, 4, 5]
    assert delayed.losses == [0.5, 1.0, 1.5, 2.0, 2.5]
