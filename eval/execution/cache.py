"""On-disk result cache keyed by the content hash of (language, source, executor version, settings).

One small JSON file per program under `cache_dir/<2 hex>/<hash>.json`, written atomically, so
several processes can share a cache and a crash never leaves a half-written entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from eval.execution.base import ExecResult, Program, Settings


def cache_key(program: Program, settings: Settings, executor_version: str) -> str:
    h = hashlib.sha256()
    for part in (
        program.language,
        executor_version,
        settings.fingerprint(program.language),
        program.source,
    ):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


class ResultCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str, program_key: str) -> ExecResult | None:
        try:
            data = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        if data.get("status") not in ("passed", "failed", "timeout", "compile_error"):
            return None
        return ExecResult(program_key, data["status"] == "passed", data["status"], data.get("detail", ""),
                          float(data.get("seconds", 0.0)), cached=True)  # fmt: skip

    def put(self, key: str, result: ExecResult) -> None:
        if result.status == "error":
            return  # infrastructure errors are not verdicts: retry next time
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {"status": result.status, "detail": result.detail, "seconds": result.seconds}, fh
            )
        try:
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
