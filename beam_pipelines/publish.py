"""Write a run into a staging directory and move it into place only when it succeeded (no Beam
transforms here; Beam's ``FileSystems`` for local and ``gs://`` paths).

Why: with ``--overwrite`` the old dataset must survive a failed run, a killed run or a run over
inputs that are all unreadable (a typo'd path). :func:`check_inputs` refuses runs with no usable
input before anything starts; :func:`recover_interrupted` finishes or undoes a publish that a
kill interrupted; the pipeline writes under :func:`new_staging_dir`; :func:`publish` swaps the
new output folder in (local: one swap of whole folders, beam_pipelines/atomic_publish.py);
:func:`discard` removes the staging directory otherwise.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from beam_pipelines import atomic_publish
from beam_pipelines.git_mining import RepoSpec, is_url
from beam_pipelines.sinks import DEADLETTER_DIR, STATS_NAME
from beam_pipelines.stats import STAGES

OUTPUT_NAMES: tuple[str, ...] = (*STAGES, DEADLETTER_DIR, STATS_NAME)
"""What a run writes directly under its output directory."""


def _is_local(path: str) -> bool:
    return "://" not in path


def existing_outputs(output: str) -> list[str]:
    """Paths of a previous run's outputs in ``output``."""
    targets = [FileSystems.join(output, name) for name in OUTPUT_NAMES]
    return [t for t in targets if FileSystems.exists(t)]


LEGACY_STAGING = ".staging-*"
"""Staging folders inside the output, where runs before the whole-folder swap built (and where
remote runs still build)."""


def _carried(name: str) -> bool:
    """An entry of the old output folder that a new run keeps: anything it does not write."""
    return name not in OUTPUT_NAMES and not fnmatch.fnmatchcase(name, LEGACY_STAGING)


def recover_interrupted(output: str) -> None:
    """Local: undo or finish a publish that a kill interrupted, delete dead runs' staging folders
    (beside the output, and the older ones inside it). Run before looking at the output."""
    if not _is_local(output):
        return
    atomic_publish.recover(output)
    if os.path.isdir(output):
        for leftover in sorted(glob.glob(os.path.join(glob.escape(output), LEGACY_STAGING))):
            atomic_publish.remove(Path(leftover))


def new_staging_dir(output: str) -> str:
    """A fresh directory for this run's files: local, a hidden sibling of ``output`` (the new
    output folder, swapped in whole by :func:`publish`); remote, hidden inside ``output``."""
    if _is_local(output):
        return str(atomic_publish.new_folder(output))
    return FileSystems.join(output, f".staging-{uuid.uuid4().hex[:12]}")


def discard(staging: str) -> None:
    """Remove a staging directory and everything in it (nothing when it was published)."""
    if _is_local(staging):
        atomic_publish.remove(Path(staging))
    elif FileSystems.exists(staging):
        FileSystems.delete([staging])


def publish(staging: str, output: str) -> None:
    """Make the staged run ``output``'s dataset.

    Local: the staging folder, plus hard links to whatever else the old output folder held (not
    a run's outputs), replaces the output folder in one swap of whole folders; a kill leaves the
    old or the new dataset after :func:`recover_interrupted`. Remote (no folder renames on object
    stores): the old outputs are deleted and the staged files renamed one by one, not atomic.
    """
    if _is_local(staging):
        atomic_publish.publish_folder(staging, output, keep=_carried)
        return
    old = existing_outputs(output)
    if old:
        FileSystems.delete(old)
    files = [m.path for m in FileSystems.match([FileSystems.join(staging, "**")])[0].metadata_list]
    FileSystems.rename(files, [output + f[len(staging) :] for f in files])
    discard(staging)


def _git_problem(line: str) -> str | None:
    """Why a ``--repos`` line cannot be mined (None when usable or a URL, checked on workers)."""
    try:
        spec = RepoSpec.parse(line)
    except ValueError as err:
        return str(err)
    if is_url(spec.location):
        return None
    if not os.path.isdir(spec.location):
        return "no such directory"
    proc = subprocess.run(
        ["git", "-C", spec.location, "rev-parse", "--git-dir"], capture_output=True, check=False
    )
    return None if proc.returncode == 0 else "not a git repository"


def _jsonl_problem(pattern: str) -> str | None:
    """Why a ``--jsonl`` pattern is unusable (it matches no file), or None."""
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception as err:  # Beam raises its own error types per filesystem
        return f"cannot be listed ({type(err).__name__}: {err})"
    return None if matched else "matches no file"


def check_inputs(source: str, inputs: Sequence[str]) -> str | None:
    """A one-line reason when none of ``inputs`` is usable, else None. Some unusable inputs
    among usable ones are fine: the run reports them as dead letters."""
    check = {"git": _git_problem, "jsonl": _jsonl_problem}.get(source)
    if check is None or not inputs:
        return None
    problems = [(item, check(item)) for item in inputs]
    if any(problem is None for _, problem in problems):
        return None
    return "no usable input: " + "; ".join(f"{item} ({problem})" for item, problem in problems)
