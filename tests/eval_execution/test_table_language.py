"""A language defined by nothing but a table entry runs through the one executor shape.

The test-only language "c" reuses the C++ toolchain's gcc: two compile steps (a strict syntax
check, then the build; the second runs only when the first passed), a run step, a file name and
a timeout. Every verdict the executors give comes out of it with its usual message.
"""

from __future__ import annotations

import shutil

import pytest

from eval.execution import Program, Settings, run_programs
from eval.execution.executors import fill
from eval.execution.languages import LANGUAGE_TABLE, Language
from eval.execution.sandbox import bwrap_usable
from eval.execution.toolchains import missing_for

C = Language(
    "c",
    timeout=5.0,
    source="test.c",
    tools=lambda settings: {"gcc": shutil.which("gcc"), "cflags": ["-std=c11", "-O0"]},
    compile=(
        ("{gcc}", "{cflags}", "-fsyntax-only", "-Werror=unused-variable", "test.c"),
        ("{gcc}", "{cflags}", "test.c", "-o", "a.out"),
    ),
    run=("./a.out",),
    toolchain="cpp",  # gcc comes with the C++ toolchain's g++
)

PROGRAMS = {
    "passes": "int main(void) { return 0; }\n",
    "fails": '#include <stdio.h>\nint main(void) { fputs("wrong answer", stderr); return 1; }\n',
    "crashes": "#include <signal.h>\nint main(void) { raise(SIGKILL); return 0; }\n",
    "no_such_function": "int main(void) { return undeclared_function(); }\n",
    "first_step_refuses": "int main(void) { int unused; return 0; }\n",
    "loops": "int main(void) { for (;;) {} }\n",
}


@pytest.mark.toolchains
def test_a_table_entry_alone_makes_a_language(monkeypatch):
    if missing_for("cpp") or shutil.which("gcc") is None:
        pytest.skip("toolchains missing: bash eval/setup_toolchains.sh")
    monkeypatch.setitem(LANGUAGE_TABLE, "c", C)
    settings = Settings(sandbox=bwrap_usable())  # the timeout comes from the entry
    assert settings.timeouts["c"] == 5.0
    programs = [Program("c", source, key) for key, source in PROGRAMS.items()]
    results = {r.key: r for r in run_programs(programs, settings=settings, progress=False)}
    assert {key: r.status for key, r in results.items()} == {
        "passes": "passed",
        "fails": "failed",
        "crashes": "failed",
        "no_such_function": "compile_error",
        "first_step_refuses": "compile_error",
        "loops": "timeout",
    }
    assert results["passes"].passed and not any(
        r.passed for k, r in results.items() if k != "passes"
    )
    assert results["fails"].detail == "wrong answer"
    assert "undeclared_function" in results["no_such_function"].detail
    assert "unused variable" in results["first_step_refuses"].detail
    assert results["loops"].detail == "timed out" and results["loops"].seconds >= 5.0


def test_command_templates_fill_names_and_splice_lists():
    values = {"cc": "/usr/bin/cc", "flags": ["-O2", "-g"], "timeout_s": "7", "gone": None}
    argv = fill(("{cc}", "{flags}", "-DT={timeout_s}", "x.c"), values, "c")
    assert argv == ["/usr/bin/cc", "-O2", "-g", "-DT=7", "x.c"]
    with pytest.raises(ValueError, match=r"language 'c': '\{cxx\}' names \{cxx\}"):
        fill(("{cxx}",), values, "c")
    with pytest.raises(ValueError, match=r"\{gone\} in '\{gone\}' is unavailable"):
        fill(("{gone}",), values, "c")


def test_a_malformed_entry_is_refused_where_it_is_written():
    with pytest.raises(ValueError, match=r"entry 'c': compile must be .*command lines"):
        Language("c", timeout=5.0, source="test.c", run=("./a.out",), compile=("gcc", "test.c"))
    with pytest.raises(ValueError, match=r"entry 'c': run must be"):
        Language("c", timeout=5.0, source="test.c", run="./a.out")
