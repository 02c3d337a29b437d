"""Training logs: a JSONL file, TensorBoard, and a progress bar; throughput and MFU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
from tqdm import tqdm

from octojax.plan.devices import DEVICES, chip_for_device_kind

# Dense bf16 peak TFLOP/s per device, by jax device_kind substring: a view of the chip table in
# octojax/plan/devices.py (one place per fact; sources there).
PEAK_TFLOPS = {
    kind: chip.peak_bf16_tflops for chip in DEVICES.values() for kind in chip.device_kinds
}


def peak_tflops_per_device(override: float | None = None) -> float | None:
    """The chip's peak from the table (None on CPU or unknown chips, unless overridden)."""
    if override:
        return override
    chip = chip_for_device_kind(jax.devices()[0].device_kind)
    return None if chip is None else chip.peak_bf16_tflops


def _summary_writer_class():
    """tensorboardX's SummaryWriter, imported without torch: where torch is installed,
    tensorboardX imports it (~4 s) only to accept torch tensors, and we log floats. A torch
    already imported stays; one that is not is hidden for the duration of the import only."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # `import torch` raises ImportError: tensorboardX goes numpy-only
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricsLogger:
    """Writes one JSON object per logged step, TensorBoard scalars, and updates a progress bar."""

    def __init__(
        self, run_dir: Path, *, total_steps: int, start_step: int, tensorboard: bool, progress: bool
    ):
        self.is_main = jax.process_index() == 0
        self.path = run_dir / "metrics.jsonl"
        self.writer = None
        if self.is_main:
            self._drop_steps_after(start_step, run_dir / "metrics.discarded.jsonl")
        if self.is_main and tensorboard:
            SummaryWriter = _summary_writer_class()
            # purge_step hides TensorBoard events of steps that are about to be redone
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1)
        self.bar = tqdm(
            total=total_steps, initial=start_step, desc="train", unit="step",
            disable=not (progress and self.is_main), dynamic_ncols=True,
        )  # fmt: skip

    def _drop_steps_after(self, step: int, discarded: Path) -> None:
        """After a resume from `step`, move records of later steps (an abandoned stretch of the
        run, logged after the checkpoint) out of metrics.jsonl into metrics.discarded.jsonl."""
        if not self.path.exists():
            return
        keep, drop = [], []
        for line in self.path.read_text().splitlines():
            if line.strip():
                (keep if json.loads(line)["step"] <= step else drop).append(line)
        if drop:
            with discarded.open("a") as f:
                f.write("".join(line + "\n" for line in drop))
            self.path.write_text("".join(line + "\n" for line in keep))

    def log(self, record: dict) -> None:
        if not self.is_main:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step" and v is not None:
                    self.writer.add_scalar(f"train/{k}", v, record["step"])
        post = {"loss": f"{record['loss']:.4f}", "tok/s": f"{record['tokens_per_s']:.0f}"}
        if record.get("mfu") is not None:
            post["mfu"] = f"{record['mfu']:.1%}"
        self.bar.set_postfix(post, refresh=False)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


class DelayedMetrics:
    """Fetches a step's metrics only after the next step was dispatched, so the host never waits
    for the device between steps: at most one step's metrics are pending at any time."""

    def __init__(self, make_record, sink, fetch=jax.device_get):
        self.make_record, self.sink, self.fetch = make_record, sink, fetch
        self.pending: tuple | None = None  # (step, device metrics, batch shape)
        self.losses: list[float] = []

    def submit(self, step: int, device_metrics: dict, batch_shape: tuple[int, int]) -> None:
        """Queue this step's metrics; fetch, record and emit the previously queued step's."""
        previous, self.pending = self.pending, (step, device_metrics, tuple(batch_shape))
        if previous is not None:
            self._emit(previous)

    def flush(self) -> None:
        if self.pending is not None:
            previous, self.pending = self.pending, None
            self._emit(previous)

    def _emit(self, item: tuple) -> None:
        step, device_metrics, shape = item
        record = self.make_record(step, self.fetch(device_metrics), shape)
        self.losses.append(record["loss"])
        self.sink(record)


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
