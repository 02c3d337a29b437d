"""Download the wheels octojax's core needs beyond the GPU image's packages, and check them offline.

The lent GPU machine reaches no registry; its image (bench/device_image.py) lacks a few of
octojax's core dependencies. This resolves, from pyproject.toml's [project].dependencies, the
closure of what is missing there: a core requirement not on the image, every requirement of a
carried wheel not on the image, and an image package whose version there cannot be shown to meet
a carried wheel's bound (then a newer copy travels and shadows it). Each is fetched with
`pip download --no-deps --only-binary=:all:` for the target Python on manylinux x86-64, one
version per name, into DEST (emptied first), with DEST/wheels.json naming each wheel and why.

The check installs DEST's wheels alone, offline (`--no-index --no-deps`), into a fresh target
directory with an interpreter of the target version when one is found here, and imports every
package whose requirements the folder itself satisfies; without such an interpreter pip checks the
wheels' tags for the target version instead (`--python-version`), and the report says which.

    python bench/device_wheels.py [--python-version 3.12] [--dest .device/wheels]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import parse_wheel_filename
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_image import (  # noqa: E402
    IMAGE_FLOORS,
    IMAGE_PACKAGES,
    IMAGE_PYTHON,
    IMAGE_VERSIONS,
    normalize,
)

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
PIP_ENV = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_FIND_LINKS": "",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def marker_env(python_version: str) -> dict[str, str]:
    """Environment markers of the target machine (CPython on Linux x86-64), no extras."""
    return {
        "python_version": python_version, "python_full_version": f"{python_version}.0",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
        "os_name": "posix", "platform_release": "", "platform_version": "", "extra": "",
    }  # fmt: skip


def core_requirements(pyproject: Path) -> list[Requirement]:
    """[project].dependencies of pyproject.toml."""
    try:
        deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise SystemExit(f"{pyproject}: cannot read [project].dependencies ({e})") from e
    return [Requirement(d) for d in deps]


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return [
        Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")
    ]


def image_covers(req: Requirement, core: bool) -> tuple[bool, str]:
    """(True, why) when the image's copy of req's package will do.

    core: a range from octojax's pyproject, which the image's version meets unless the version
    the image is known to have contradicts it (pyproject: ranges, not pins; hosts carry other
    versions). Otherwise a carried wheel's need: the image's copy must be shown to meet it.
    """
    name = normalize(req.name)
    if name not in IMAGE_PACKAGES:
        return False, "not on the image"
    if not req.specifier:
        return True, "on the image"
    if name in IMAGE_VERSIONS:
        v = IMAGE_VERSIONS[name]
        return req.specifier.contains(v, prereleases=True), f"image has {v}"
    if core:
        return True, "on the image"
    if name in IMAGE_FLOORS:
        floor, why = IMAGE_FLOORS[name]
        lower_only = all(s.operator in (">=", ">") for s in req.specifier)
        ok = lower_only and req.specifier.contains(floor, prereleases=True)
        return ok, f"the image's copy is only known to be >= {floor} ({why})"
    return False, "image version unknown"


class Closure:
    """The carried wheels: name -> (wheel path, combined specifier, reasons)."""

    def __init__(self, dest: Path, python_version: str):
        self.dest, self.python_version = dest, python_version
        self.env = marker_env(python_version)
        self.wheels: dict[str, Path] = {}
        self.specs: dict[str, SpecifierSet] = {}
        self.why: dict[str, list[str]] = {}

    def add(self, req: Requirement, wanted_by: str, core: bool = False) -> None:
        """Carry req's package if the image does not cover it (and, recursively, its needs)."""
        if req.marker is not None and not req.marker.evaluate(self.env):
            return
        covered, reason = image_covers(req, core)
        if covered:
            return
        name = normalize(req.name)
        self.why.setdefault(name, []).append(
            f"{wanted_by} needs {req.name}{req.specifier}: {reason}"
        )
        spec = self.specs.get(name, SpecifierSet()) & req.specifier
        self.specs[name] = spec
        have = self.wheels.get(name)
        if have is not None and spec.contains(_version(have), prereleases=True):
            return
        if have is not None:
            have.unlink()
        self.wheels[name] = wheel = self._download(f"{name}{spec}")
        for sub in wheel_requirements(wheel):
            self.add(sub, f"{name} {_version(wheel)}")

    def _download(self, requirement: str) -> Path:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                   "--only-binary=:all:", "--python-version", self.python_version,
                   "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)],
                   "-d", tmp, requirement]  # fmt: skip
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env={**os.environ, **PIP_ENV}
            )
            got = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or len(got) != 1:
                raise SystemExit(f"pip download {requirement} failed:\n{proc.stdout}{proc.stderr}")
            return Path(shutil.move(str(got[0]), self.dest / got[0].name))


def _version(wheel: Path) -> Version:
    return parse_wheel_filename(wheel.name)[1]


def find_python(version: str) -> str | None:
    """An interpreter of exactly this X.Y version on this machine, or None."""
    home = os.path.expanduser("~")
    candidates = [shutil.which(f"python{version}") or "", sys.executable]
    candidates += sorted(glob.glob(f"{home}/.pyenv/versions/{version}*/bin/python{version}"))
    for c in candidates:
        if not c:
            continue
        proc = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return c
    return None


def top_level_modules(wheel: Path) -> list[str]:
    """Importable top-level names a wheel installs (from its RECORD)."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = set()
    for n in names:
        head = n.split("/", 1)[0]
        if head.endswith((".dist-info", ".data")) or head.startswith("_"):
            continue
        if "/" in n or n.endswith(".py"):
            tops.add(head.removesuffix(".py"))
    return sorted(t for t in tops if t.isidentifier())


def check_offline(closure: Closure) -> dict:
    """Install the folder alone, offline, into a fresh target; import what it can stand alone."""
    wheels = sorted(closure.dest.glob("*.whl"))
    python = find_python(closure.python_version)
    env = {**os.environ, **PIP_ENV, "PIP_NO_INDEX": "1", "PYTHONNOUSERSITE": "1"}
    with tempfile.TemporaryDirectory() as target:
        if python:
            cmd = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--target", target, *map(str, wheels)]  # fmt: skip
        else:
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                   "--only-binary=:all:", "--python-version", closure.python_version,
                   "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)],
                   "--target", target, *map(str, wheels)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"offline install into a fresh target failed:\n{proc.stderr}")
        report = {
            "interpreter": python or f"none here; pip --python-version {closure.python_version}"
        }
        if python:
            report.update(_import_check(closure, python, target, env))
    return report


def _import_check(closure: Closure, python: str, target: str, env: dict) -> dict:
    """Import each carried package whose requirements the folder satisfies by itself."""
    alone, needs_image = [], {}
    for name, wheel in sorted(closure.wheels.items()):
        outside = [r.name for r in wheel_requirements(wheel)
                   if (r.marker is None or r.marker.evaluate(closure.env))
                   and normalize(r.name) not in closure.wheels]  # fmt: skip
        mods = top_level_modules(wheel)
        if outside:
            needs_image[name] = outside
        else:
            alone += mods
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    proc = subprocess.run([python, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {target!r})\n{code}",
                           *alone], capture_output=True, text=True, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"importing {alone} from the offline install failed:\n{proc.stderr}")
    return {"imported": alone, "not_imported_needs_image_packages": needs_image}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python-version", default=IMAGE_PYTHON, help="target X.Y (the image's: 3.12)")
    p.add_argument("--dest", default=str(ROOT / ".device" / "wheels"))
    p.add_argument("--max-mib", type=float, default=20.0, help="fail above this folder size")
    args = p.parse_args(argv)
    dest = Path(args.dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    closure = Closure(dest, args.python_version)
    for req in core_requirements(ROOT / "pyproject.toml"):
        closure.add(req, "octojax (pyproject core)", core=True)
    size = sum(w.stat().st_size for w in dest.glob("*.whl"))
    manifest = {
        "python_version": args.python_version, "platforms": list(PLATFORMS),
        "bytes": size,
        "wheels": [{"file": w.name, "name": n, "version": str(_version(w)), "why": closure.why[n]}
                   for n, w in sorted(closure.wheels.items())],
    }  # fmt: skip
    if size > args.max_mib * 2**20:
        raise SystemExit(f"{dest}: {size / 2**20:.1f} MiB of wheels, over --max-mib {args.max_mib}")
    manifest["offline_check"] = check_offline(closure)
    (dest / "wheels.json").write_text(json.dumps(manifest, indent=2) + "\n")
    names = ", ".join(f"{w['name']} {w['version']}" for w in manifest["wheels"])
    print(f"[wheels] {len(closure.wheels)} wheels, {size / 2**20:.2f} MiB, Python "
          f"{args.python_version}, in {dest}: {names}")  # fmt: skip
    print(f"[wheels] offline check: {json.dumps(manifest['offline_check'])}")


if __name__ == "__main__":
    main()
