"""The GPU device suite rehearsed on CPU, as close to the lent machine as this one allows.

The lent machine (bench/device_image.py) has no network and an image that lacks some of octojax's
core dependencies. The rehearsal:

1. `bench/device_wheels.sh --python-version <this Python>` downloads the wheels the image lacks
   from PyPI (for this interpreter's version; the real folder is made for 3.12), as on the machine
   that prepares a GPU run. CI reaches PyPI, so a failed download fails the test.
2. A fresh venv that sees only the image's packages. A venv of its own (no system site-packages)
   whose site-packages holds one .pth naming a "view" directory: symlinks to those of this
   interpreter's installed distributions whose names are on the image's list (bench/device_image.py),
   found from each distribution's RECORD (a directory shared with a distribution that is not on
   the list, such as a namespace package, is linked file by file). Building it copies nothing and
   installs nothing, so it takes seconds; pydantic, tensorboardX, google-crc32c, apache-beam and
   octojax's own editable install are absent from it, which the test checks first. torch and
   transformers are in it because the image has them and the suite's transformers comparisons
   must run too (their code paths are part of what is rehearsed).
3. `bench/device_suite.sh --dry-run` in that venv with the network blocked for pip
   (PIP_NO_INDEX=1, no pip configuration, no find-links): it installs the wheel folder offline and
   runs every part with tiny shapes; the test checks each part's status and JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from device_image import IMAGE_PACKAGES, normalize  # noqa: E402

ABSENT_ON_IMAGE = ("pydantic", "tensorboardX", "google_crc32c", "apache_beam")


def visible_distributions(site: Path, carried: set[str]) -> set[str]:
    """Installed distributions the view shows: those on the image's list, plus what their
    installed versions require (a newer huggingface-hub here may need a package the image's
    older one does not), never a carried one the image lacks, nor apache-beam."""
    from packaging.requirements import Requirement

    dists = {normalize(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}
    hidden = (carried - IMAGE_PACKAGES) | {"apache-beam"}
    todo = [n for n in dists if n in IMAGE_PACKAGES]
    shown = set()
    while todo:
        name = todo.pop()
        if name in shown or name in hidden or name not in dists:
            continue
        shown.add(name)
        for line in dists[name].requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(normalize(req.name))
    return shown


def _owners(site: Path) -> dict[tuple[str, ...], set[str]]:
    """{path parts under site: the distributions that installed files there} (from RECORD)."""
    owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for dist in metadata.distributions(path=[str(site)]):
        name = normalize(dist.metadata["Name"])
        for f in dist.files or []:
            parts = Path(f).parts
            if parts and ".." not in parts:
                for i in range(1, len(parts) + 1):
                    owners[parts[:i]].add(name)
    return owners


def image_view(view: Path, carried: set[str]) -> set[str]:
    """Symlink into `view` what the visible distributions installed here; their names."""
    site = Path(sysconfig.get_paths()["purelib"])
    owners, shown = _owners(site), visible_distributions(site, carried)

    def place(parts: tuple[str, ...]) -> None:
        who = owners[parts]
        if not who & shown:
            return
        src, dst = site.joinpath(*parts), view.joinpath(*parts)
        if who <= shown or not src.is_dir():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
            return
        for child in sorted({p[len(parts)] for p in owners if len(p) > len(parts) and
                             p[: len(parts)] == parts}):  # fmt: skip
            place((*parts, child))

    for top in sorted({p[0] for p in owners}):
        place((top,))
    return shown


def make_venv(where: Path, carried: set[str]) -> Path:
    """A venv whose only packages are the image view; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / "venv")], check=True)
    view = where / "image-view"
    image_view(view, carried)
    py = where / "venv" / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    Path(purelib, "image_view.pth").write_text(f"{view}\n")
    return py


def offline_env(py: Path) -> dict:
    """This environment with pip cut off from every index and the test's own settings removed."""
    drop = ("OUT", "XLA_FLAGS", "PYTHONPATH", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL",
            "PIP_INDEX_URL", "JAX_PLATFORMS", "VIRTUAL_ENV")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PYTHON=str(py), PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    return env


@pytest.mark.slow
def test_device_suite_dry_run_in_an_image_like_venv(tmp_path):
    pytest.importorskip("torch", reason="the image has torch; the view links this one")
    py_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prep = subprocess.run(
        ["bash", str(ROOT / "bench" / "device_wheels.sh"), "--python-version", py_version,
         "--dest", str(tmp_path / "device")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert prep.returncode == 0, "device_wheels.sh (needs PyPI):\n" + prep.stdout + prep.stderr
    manifest = json.loads((tmp_path / "device" / "wheels" / "wheels.json").read_text())
    carried = {w["name"] for w in manifest["wheels"]}
    assert {"pydantic", "tensorboardx", "google-crc32c"} <= carried
    assert not carried & {"jax", "flax", "torch", "numpy"}  # the image has these

    py = make_venv(tmp_path, carried)
    env = offline_env(py)
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    seen = subprocess.run([py, "-c", probe, *ABSENT_ON_IMAGE, "jax", "flax", "torch", "octojax"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert seen.stdout.strip() == "['jax', 'flax', 'torch']", seen.stdout + seen.stderr

    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "device_suite.sh"), "--dry-run", "--out", str(out),
         "--device-dir", str(tmp_path / "device")],
        env=env, capture_output=True, text=True, timeout=1900,
    )  # fmt: skip
    log = (out / "suite.log").read_text() if (out / "suite.log").exists() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:] + log[-6000:]
    check_results(out, carried)


def check_results(out: Path, carried: set[str]) -> None:
    """Every part ran to a result; the figures the GPU run reports are there."""
    results = json.loads((out / "results.json").read_text())
    assert results["suite"]["dry_run"] and results["suite"]["finished"]
    assert results["suite"]["install"].startswith("installed offline")
    parts = results["parts"]
    assert list(parts) == ["environment", "gpu_tests", "train", "decode", "workload"]
    assert {name: p["status"] for name, p in parts.items()} == dict.fromkeys(parts, "ok")
    env = parts["environment"]["result"]
    assert env["import_errors"] == {} and env["unmet_requirements"] == []
    assert env["packages"]["pydantic"]["from"] == "carried wheels"
    assert env["packages"]["jax"]["from"] != "carried wheels"
    assert parts["gpu_tests"]["result"]["failed"] == 0  # skipped on CPU, but collected and run
    train = parts["train"]["result"]
    assert train["octojax"]["tokens_per_s"] > 0 and train["hf"]["tokens_per_s"] > 0
    assert train["hf"]["device"] == "cpu" and train["octojax_over_hf"] > 0
    decode = parts["decode"]["result"]
    assert [r["batch"] for r in decode["runs"]] == [1, 2]
    for run in decode["runs"]:
        assert run["octojax_tokens_per_s"] > 0 and run["hf_tokens_per_s"] > 0
        assert set(run["hf_modes"]) == {"eager", "static+compile(eager)"}
        assert all("tokens_per_s" in m for m in run["hf_modes"].values()), run["hf_modes"]
    workload = parts["workload"]["result"]
    assert (
        list(workload["runs"]) == ["continuous"]
        and workload["runs"]["continuous"]["samples_per_s"] > 0
    )
    assert workload["problems"] == 2 and workload["n_samples"] == 2
    summary = (out / "summary.md").read_text()
    for heading in (
        "## Parts",
        "## Training",
        "## Decoding",
        "## HumanEvalPack-shaped",
        "## GPU tests",
    ):
        assert heading in summary
    assert "octojax / transformers" in summary
    assert len(list(out.iterdir())) <= 8  # the run tool returns at most 8 files
