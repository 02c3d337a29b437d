"""Write a run into a staging directory and move it into place only when it succeeded (no Beam
transforms here; Beam's ``FileSystems`` for local and ``gs://`` paths).

Why: with ``--overwrite`` the old dataset must survive a failed run or a run over inputs that are
all unreadable (a typo'd path). :func:`check_inputs` refuses runs with no usable input before
anything starts; the pipeline writes under :func:`new_staging_dir`; :func:`publish` replaces the
old outputs by the new ones; :func:`discard` removes the staging directory otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence

from apache_beam.io.filesystems import FileSystems

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


def new_staging_dir(output: str) -> str:
    """A fresh directory inside ``output`` for this run's files (hidden: starts with a dot)."""
    staging = FileSystems.join(output, f".staging-{uuid.uuid4().hex[:12]}")
    if _is_local(staging):
        os.makedirs(staging)
    return staging


def discard(staging: str) -> None:
    """Remove a staging directory and everything in it."""
    if _is_local(staging):
        shutil.rmtree(staging, ignore_errors=True)
    elif FileSystems.exists(staging):
        FileSystems.delete([staging])


def publish(staging: str, output: str) -> None:
    """Replace ``output``'s previous outputs by the staged ones, then remove ``staging``.

    Local: each staged entry replaces its target with ``os.replace`` (the old one is first moved
    into the staging directory, so a crash leaves either the old or the new entry in place).
    Remote: the old files are deleted and the staged files renamed one by one.
    """
    if _is_local(staging):
        trash = os.path.join(staging, ".old")
        os.makedirs(trash, exist_ok=True)
        for name in OUTPUT_NAMES:
            new, target = os.path.join(staging, name), os.path.join(output, name)
            if not os.path.exists(new):
                continue
            if os.path.exists(target):
                os.replace(target, os.path.join(trash, name))
            os.replace(new, target)
        discard(staging)
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
