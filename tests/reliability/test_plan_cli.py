"""`octojax plan` refuses arguments out of range in one line (exit 2) instead of planning nonsense."""

from __future__ import annotations

import pytest

from octojax.cli import main

CONFIG = "configs/octocoder.yaml"


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--devices", "0", "must be at least 1, got 0"),  # was: silently planned for 8
        ("--devices", "-4", "must be at least 1, got -4"),  # was: negative memory, "fits"
        ("--usable", "7", "must be in (0, 1], got 7.0"),
        ("--usable", "-1", "must be in (0, 1], got -1.0"),
        ("--seq-len", "0", "must be at least 1, got 0"),  # was: ignored
        ("--generate-batch", "0", "must be at least 1, got 0"),
    ],
)
def test_out_of_range_plan_arguments_are_refused(capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "--config", CONFIG, flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert err[-1] == f"octojax plan: error: argument {flag}: {message}"
