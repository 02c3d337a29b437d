"""Every config in configs/ fits the hardware its header names, by the formula plan (seconds, no
libtpu). The TPU compiler's figures for the 15.5B configs come from bench/tpu_compile.py
(docs/training.md, "Compiled for TPU"); `octojax plan --compile` checks one by hand."""

import json
from pathlib import Path

import pytest

from octojax.cli import main

REPO = Path(__file__).resolve().parents[2]
# config -> the `octojax plan` target flags for the hardware named in its header
TARGETS = {
    "octocoder.yaml": ["--device", "v5e-64"],
    "octocoder_lora.yaml": ["--device", "v5e-16"],
    "octocoder_gpu_nodes.yaml": ["--device", "h100", "--devices", "16"],
    "starcoderbase-1b.yaml": ["--device", "h100", "--devices", "1"],
    "smoke.yaml": ["--devices", "1", "--device-memory", "8GiB"],
}


def test_every_config_names_its_hardware():
    shipped = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert shipped == sorted(TARGETS), "add the new config's hardware to TARGETS"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_config_fits_its_hardware_without_splitting_notes(name, capsys):
    code = main(["plan", "--config", str(REPO / "configs" / name), *TARGETS[name], "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    plan = json.loads(out.out)
    assert plan["fits"] is True, (name, plan["total"], plan["device_memory"])
    assert not [n for n in plan["notes"] if "cannot be split" in n], plan["notes"]
