"""eval never imports jax: every eval module is imported in a fresh interpreter and checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import importlib, json, pkgutil, sys
import eval
names, failed = [], {}
for info in pkgutil.walk_packages(eval.__path__, "eval."):
    if info.name == "eval.__main__":
        continue  # running it would start the CLI
    try:
        importlib.import_module(info.name)
        names.append(info.name)
    except Exception as e:
        failed[info.name] = repr(e)
print(json.dumps({
    "imported": names,
    "failed": failed,
    "jax": sorted(m for m in sys.modules if m == "jax" or m.startswith(("jax.", "jaxlib", "flax"))),
}))
"""


def test_no_eval_module_imports_jax():
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, report["failed"]
    for name in ("eval.cli", "eval.data", "eval.tasks", "eval.generation", "eval.scoring"):
        assert name in report["imported"]
    assert report["jax"] == [], f"eval imported {report['jax']}"


def test_cli_help_does_not_import_jax():
    code = (
        "import sys, contextlib, io\n"
        "from eval.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['score', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('jax' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
