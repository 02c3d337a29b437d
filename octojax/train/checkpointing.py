"""Orbax checkpoints of the whole training state, resumable on any mesh.

A step directory holds `params` (or `lora` adapters), `opt_state`, and `meta` (JSON: step, RNG,
the input pipeline's state). Saves are asynchronous; the newest finished checkpoint that restores
cleanly is used, and a corrupt one is reported and skipped in favour of the one before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from octojax.config import ConfigError
from octojax.convert.octojax_checkpoint import CONFIG_FILE
from octojax.model.config import ModelConfig

log = logging.getLogger(__name__)
TMP_SUFFIX = ".orbax-checkpoint-tmp"


class CheckpointMismatch(ConfigError):
    """A readable checkpoint whose arrays do not fit the configured model (not corruption)."""


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (disk full, read-only or unwritable storage, ...)."""


class Checkpointer:
    """CheckpointManager with the items params|lora, opt_state and meta."""

    def __init__(self, directory: str | Path, *, keep: int, async_save: bool, param_item: str):
        # etils' epath handles local paths and gs:// (orbax writes through it as well)
        directory = str(directory)
        self.directory = epath.Path(directory if "://" in directory else Path(directory).absolute())
        self.param_item = param_item
        self.failed = False  # a save failed (and was reported)
        self._pending: int | None = None  # the newest save started (async: maybe unfinished)
        unfinished = self._unfinished_saves()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            create=True,
            cleanup_tmp_directories=True,  # a save interrupted by a kill never becomes a step
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(param_item, "opt_state", "meta")
        )
        for name in unfinished:
            log.warning("removed the unfinished save %s (interrupted while writing)", name)
            if jax.process_index() == 0:
                print(f"[train] removed unfinished checkpoint save {self.directory / name}")

    def _unfinished_saves(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.name for p in self.directory.iterdir() if TMP_SUFFIX in p.name)

    def write_model_config(self, cfg: ModelConfig) -> None:
        """model_config.json beside the steps, so convert/generate can read any step."""
        if jax.process_index() == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / CONFIG_FILE
            path.write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")

    def save(self, step: int, state: dict, meta: dict, *, force: bool = False) -> bool:
        """Start saving `step` (asynchronously when so configured). CheckpointSaveError when
        this save, or an earlier asynchronous one, failed: training must stop, not run on
        into steps that cannot be saved."""
        args = ocp.args.Composite(
            **{
                self.param_item: ocp.args.StandardSave(state["params"]),
                "opt_state": ocp.args.StandardSave(state["opt_state"]),
                "meta": ocp.args.JsonSave(meta),
            }
        )
        self.wait()  # orbax waits for the previous save anyway; its failure is named as its own
        with self._failing_save(step):
            started = self.manager.save(step, args=args, force=force)
        if started:
            self._pending = step
        return started

    def check(self) -> None:
        """Raise CheckpointSaveError if an asynchronous save has failed since the last check."""
        with self._failing_save(self._pending):
            self.manager.check_for_errors()

    def wait(self) -> None:
        with self._failing_save(self._pending):
            self.manager.wait_until_finished()

    @contextlib.contextmanager
    def _failing_save(self, step: int | None):
        try:
            yield
        except CheckpointSaveError:
            raise
        except Exception as e:  # orbax/tensorstore wrap OSErrors in many types
            self.failed = True
            text = _os_reason(e)
            good = [s for s in self._complete_steps() if s != step]
            last = f"step {good[-1]}" if good else "none"
            what = f"saving step {step}" if step is not None else "a checkpoint save"
            raise CheckpointSaveError(
                f"{self.directory}: {what} failed ({text}); training stopped; the last good "
                f"checkpoint is {last} (free space or fix the folder's permissions, then rerun "
                "to resume from it)"
            ) from None

    def _complete_steps(self) -> list[int]:
        """Steps with a finished save on disk (not an orbax tmp folder)."""
        if not self.directory.exists():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore_latest(self, abstract_state: dict) -> tuple[dict, dict] | None:
        """(state, meta) of the newest checkpoint that restores; None when there is none.

        abstract_state carries the target shardings (ShapeDtypeStructs), so a checkpoint written
        on one mesh is resharded onto the current one.
        """
        bad: list[int] = []
        try:
            return self._restore_newest_good(abstract_state, bad)
        finally:
            if bad:
                self._set_aside(bad)

    def _restore_newest_good(
        self, abstract_state: dict, bad: list[int]
    ) -> tuple[dict, dict] | None:
        for step in reversed(self.steps()):
            self._check_shapes(step, abstract_state["params"])
            try:
                restored = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        **{
                            self.param_item: ocp.args.StandardRestore(abstract_state["params"]),
                            "opt_state": ocp.args.StandardRestore(abstract_state["opt_state"]),
                            "meta": ocp.args.JsonRestore(),
                        }
                    ),
                )
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                log.error(
                    "checkpoint %s is corrupt or incomplete (%s: %s); trying the previous one",
                    self.directory / str(step),
                    type(e).__name__,
                    str(e).splitlines()[0][:300] if str(e) else "",
                )
                bad.append(step)
                continue
            meta: dict[str, Any] = restored["meta"]
            state = {
                "step": meta["step"],
                "params": restored[self.param_item],
                "opt_state": restored["opt_state"],
            }
            return state, meta
        return None

    def _check_shapes(self, step: int, abstract_params: dict) -> None:
        """Raise CheckpointMismatch when the saved parameter shapes differ from the model's."""
        try:
            meta = ocp.StandardCheckpointer().metadata(self.directory / str(step) / self.param_item)
            tree = getattr(meta, "item_metadata", meta)
            tree = getattr(tree, "tree", tree)
            flat_saved = {k: tuple(m.shape) for k, m in _flatten(tree)}
        except Exception:  # unreadable metadata: the restore below reports it as corrupt
            return
        if not flat_saved:
            return
        want = jax.tree.map(lambda a: tuple(a.shape), abstract_params)
        diffs = [
            f"{name}: saved {flat_saved.get(name)} vs configured {shape}"
            for name, shape in _flatten(want)
            if flat_saved.get(name) != shape
        ]
        if diffs:
            raise CheckpointMismatch(
                f"{self.directory / str(step)}: the checkpoint does not fit the configured model "
                f"({'; '.join(diffs[:4])}{' ...' if len(diffs) > 4 else ''}); the model config "
                "changed since it was written: use a new run_dir or `octojax train --reset`"
            )

    def _set_aside(self, steps: list[int]) -> None:
        """Rename unusable step directories to corrupt-<step> (kept for inspection, never reused)."""
        if jax.process_index() == 0:
            for step in steps:
                src = self.directory / str(step)
                dst = self.directory / f"corrupt-{step}"
                n = 1
                while dst.exists():
                    dst = self.directory / f"corrupt-{step}.{n}"
                    n += 1
                src.rename(dst)
                log.error("moved unusable checkpoint %s to %s", src, dst)
        self.manager.reload()

    def close(self) -> None:
        """Finish pending saves and release orbax; after a failed save (already reported) its
        error is not raised a second time."""
        try:
            with self._failing_save(self._pending):
                self.manager.wait_until_finished()
                self.manager.close()
        except CheckpointSaveError:
            if not self.failed:
                raise


_OS_REASONS = ("No space left on device", "Read-only file system", "Permission denied",
               "Disk quota exceeded")  # fmt: skip


def _os_reason(error: Exception) -> str:
    """The operating system's reason inside an orbax/tensorstore error, else its first line."""
    text = str(error).strip()
    for reason in _OS_REASONS:
        if reason in text:
            return reason
    return text.splitlines()[0][:200] if text else type(error).__name__


def _flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """[(dotted path, leaf)] of a nested mapping (shape tuples or array metadata as leaves)."""
    if isinstance(tree, Mapping):
        out = []
        for k, v in tree.items():
            out += _flatten(v, f"{prefix}{k}.")
        return out
    return [(prefix.rstrip("."), tree)]
