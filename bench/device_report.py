"""The device suite's reports: the environment part (versions, devices, the carried wheels checked
against what is installed), the pytest report of tests/test_gpu.py, and summary.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DISTS = (
    "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "flax", "optax", "orbax-checkpoint",
    "numpy", "ml-dtypes", "torch", "transformers", "tokenizers", "safetensors", "pydantic",
    "pydantic-core", "tensorboardX", "google-crc32c", "typing-extensions", "protobuf", "PyYAML",
    "tqdm", "matplotlib", "pytest",
)  # fmt: skip
# What the suite's parts import: octojax's core (pydantic configs, the trainer, generation,
# conversion), the HumanEvalPack task code, and the carried packages themselves.
IMPORTS = (
    "pydantic", "tensorboardX", "google_crc32c", "octojax.config", "octojax.train.trainer",
    "octojax.generate", "octojax.convert", "eval.tasks",
)  # fmt: skip


def env_report(device_dir: Path) -> dict:
    """Versions (and whether each came from the carried wheels), imports, devices, nvidia-smi."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # look, do not hold the GPU
    import importlib

    report = {
        "python": platform.python_version(), "executable": sys.executable,
        "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
        "packages": _packages(), "carried": _carried(device_dir / "wheels" / "wheels.json"),
    }  # fmt: skip
    report["unmet_requirements"] = report["carried"].pop("unmet", [])
    report["import_errors"] = {}
    for name in IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as e:  # reported: the parts that need it will fail and say so
            report["import_errors"][name] = f"{type(e).__name__}: {e}"
    report["jax"] = _jax()
    report["torch"] = _torch()
    report["nvidia_smi"] = _nvidia_smi()
    return report


def _packages() -> dict:
    from importlib import metadata

    site = os.environ.get("SUITE_SITE")
    out = {}
    for name in DISTS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            out[name] = None
            continue
        where = str(dist.locate_file(""))
        carried = bool(site) and os.path.realpath(where).startswith(os.path.realpath(site))
        out[name] = {"version": dist.version, "from": "carried wheels" if carried else where}
    return out


def _carried(manifest: Path) -> dict:
    """The wheel folder's manifest against what is installed: versions and requirements met."""
    from importlib import metadata

    from packaging.requirements import Requirement

    if not manifest.exists():
        return {"manifest": None}
    wheels = json.loads(manifest.read_text())["wheels"]
    unmet = []
    for w in wheels:
        try:
            have = metadata.version(w["name"])
        except metadata.PackageNotFoundError:
            unmet.append(f"{w['name']} {w['version']} is carried but not installed")
            continue
        if have != w["version"]:
            unmet.append(f"{w['name']}: {have} imported, {w['version']} carried")
        for line in metadata.requires(w["name"]) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                got = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                unmet.append(f"{w['name']} needs {req}: missing")
                continue
            if not req.specifier.contains(got, prereleases=True):
                unmet.append(f"{w['name']} needs {req}: {got} installed")
    return {"manifest": str(manifest), "wheels": [f"{w['name']} {w['version']}" for w in wheels],
            "unmet": unmet}  # fmt: skip


def _jax() -> dict:
    try:
        import jax

        devices = jax.devices()
        return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
                "devices": [str(d) for d in devices]}  # fmt: skip
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def _torch() -> dict:
    try:
        import torch

        info = {"cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda}
        if info["cuda_available"]:
            info.update(device=torch.cuda.get_device_name(0),
                        cudnn=torch.backends.cudnn.version())  # fmt: skip
        return info
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def _nvidia_smi() -> str | None:
    query = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    try:
        proc = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or proc.stderr.strip()


def gpu_test_results(xml_path: Path) -> dict | None:
    """Counts and per-test outcome of a pytest --junitxml report (None if it was not written)."""
    if not xml_path.exists():
        return None
    root = ET.parse(xml_path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    tests = []
    for case in suite.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = (node.get("message") or "")[:300]
        tests.append({"test": case.get("name"), "outcome": outcome,
                      "seconds": round(float(case.get("time", 0)), 2), "message": message})  # fmt: skip
    counts = {
        k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")
    }
    return {**counts, "tests": tests}


def write_summary(results: dict, path: Path) -> None:
    """summary.md: the parts' status, then each part's figures, from results.json's content."""
    parts = results["parts"]
    s = results["suite"]
    lines = [f"# Device suite{' (dry run, CPU)' if s['dry_run'] else ''}", "",
             f"started {s['started']}, {s['wall_s']} s of a {s['budget_s']:.0f} s budget"
             f"{'' if s['finished'] else ' (still running or cut off)'}", "",
             f"install: {s['install']}", ""]  # fmt: skip
    lines += _environment_md((parts.get("environment") or {}).get("result") or {})
    lines += ["## Parts", "", "| part | status | seconds | limit s |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {p['status']} | {p.get('seconds', '')} | {p.get('limit_s', '')} |"
              for name, p in parts.items()]  # fmt: skip
    lines += _train_md((parts.get("train") or {}).get("result"))
    lines += _decode_md((parts.get("decode") or {}).get("result"))
    lines += _workload_md((parts.get("workload") or {}).get("result"), s.get("workload_data"))
    lines += _tests_md((parts.get("gpu_tests") or {}).get("result"))
    errors = [f"- {n}: {p['error']}" for n, p in parts.items() if p.get("error")]
    lines += ["", "## Errors", "", *errors] if errors else []
    path.write_text("\n".join(lines) + "\n")


def _environment_md(env: dict) -> list[str]:
    if not env:
        return ["## Environment", "", "not recorded", ""]
    pk = env.get("packages") or {}
    ver = ", ".join(f"{n} {v['version']}" for n, v in pk.items() if v)
    missing = ", ".join(n for n, v in pk.items() if not v)
    out = ["## Environment", "", f"- GPU: {env.get('nvidia_smi') or 'none (nvidia-smi absent)'}",
           f"- jax: {json.dumps(env.get('jax'))}", f"- torch: {json.dumps(env.get('torch'))}",
           f"- Python {env.get('python')}, {env.get('cpu_count')} CPUs; {ver}"]  # fmt: skip
    out += [f"- not installed: {missing}"] if missing else []
    for key in ("import_errors", "unmet_requirements"):
        if env.get(key):
            out.append(f"- {key.replace('_', ' ')}: {json.dumps(env[key])}")
    return [*out, ""]


def _train_md(r: dict | None) -> list[str]:
    out = ["", "## Training (bench/train_bench.py --compare-hf)", ""]
    if not r:
        return [*out, "no result"]
    if "shape" in r:
        out += [f"shape {r['shape']}, batch {r['batch']} x {r['seq_len']}, {r['dtype']}, remat "
                f"{r['remat']}, attention {r['attention']}, peak {r['peak_tflops_per_device']} "
                "TFLOP/s per device", ""]  # fmt: skip
    out += ["| | tokens/s | MFU | step s | warm-up s |", "| --- | --- | --- | --- | --- |"]
    for side, label in (("octojax", "octojax"), ("hf", "transformers")):
        x = r.get(side)
        if x:
            out.append(f"| {label} | {x['tokens_per_s']} | {x['mfu']} | {x['step_s_best']} | "
                       f"{round(x.get('warmup_s', 0), 1)} |")  # fmt: skip
        else:
            out.append(f"| {label} | {r.get(side + '_error', 'no result')} | | | |")
    if "octojax_over_hf" in r:
        out += ["", f"octojax / transformers: **{r['octojax_over_hf']}x**"]
    return out


def _decode_md(r: dict | None) -> list[str]:
    out = ["", "## Decoding (bench/generate_bench.py --compare-hf)", ""]
    if not r or not r.get("runs"):
        return [*out, "no result"]
    out += [f"{r.get('shape')}, {r.get('dtype')}, prompt {r.get('prompt_len')}, "
            f"{r.get('new_tokens')} new tokens, greedy", "",
            "| batch | octojax tok/s | transformers tok/s (mode) | octojax / transformers |",
            "| --- | --- | --- | --- |"]  # fmt: skip
    for run in r["runs"]:
        modes = "; ".join(f"{m}: {v.get('tokens_per_s', v.get('error', '?'))}"
                          for m, v in (run.get("hf_modes") or {}).items())  # fmt: skip
        out.append(f"| {run['batch']} | {run['octojax_tokens_per_s']} | {modes or '-'} | "
                   f"{run.get('speedup_vs_hf', '-')} |")  # fmt: skip
    if r.get("hf_error"):
        out += ["", f"transformers: {r['hf_error']}"]
    return out


def _workload_md(r: dict | None, data: str | None) -> list[str]:
    out = ["", "## HumanEvalPack-shaped workload (generate_bench.py --workload humanevalpack)", ""]
    if not r or not r.get("runs"):
        return [*out, "no result"]
    out += [f"{r['problems']} prompts x {r['n_samples']} samples, {r['slots']} slots, mean "
            f"new-token limit {r['mean_limit']}, {r['dtype']}, data {data}", "",
            "| scheduler | samples/s | new tokens/s | seconds | slot use |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    out += [f"| {k} | {v['samples_per_s']} | {v['new_tokens_per_s']} | {v['seconds']} | "
            f"{v['slot_use']} |" for k, v in r["runs"].items()]  # fmt: skip
    return out


def _tests_md(r: dict | None) -> list[str]:
    out = ["", "## GPU tests (tests/test_gpu.py)", ""]
    if not r:
        return [*out, "no report"]
    out += [f"{r['passed']} passed, {r['failed']} failed, {r['error']} errors, "
            f"{r['skipped']} skipped", "", "| test | outcome | s | message |",
            "| --- | --- | --- | --- |"]  # fmt: skip
    out += [f"| {t['test']} | {t['outcome']} | {t['seconds']} | {t['message'][:120]} |"
            for t in r["tests"]]  # fmt: skip
    return out
