"""Fast checks: program assembly as the harness does it, the result cache, order, toolchain errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from eval.execution import (
    DEFAULT_TIMEOUTS,
    Program,
    Settings,
    ToolchainError,
    check_toolchains,
    run_programs,
)
from eval.execution.executors import Executor
from eval.execution.sandbox import bwrap_usable
from eval.execution.toolchains import missing_for
from eval.programs import assemble_program

_spec = importlib.util.spec_from_file_location(
    "_exec_helpers", Path(__file__).with_name("helpers_data.py")
)
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def test_python_program_has_harness_header_and_test():
    problem = {"test": "def check(f):\n    assert f() == 1\ncheck(g)\n"}
    src = assemble_program("python", "def g():\n    return 1\n", problem)
    assert src.startswith("import math\nimport re\n")
    assert "from collections import *\ndef g():\n    return 1\n\ndef check(f)" in src


def test_cpp_program_drops_candidate_main_and_prepends_header():
    src = assemble_program(
        "cpp", "int f(){return 1;}\nint main(){return 1;}", {"test": "int main(){}"}
    )
    assert src.startswith("using namespace std;\n#include<stdlib.h>")
    assert "int main(){return 1;}" not in src and src.endswith("int f(){return 1;}\n\nint main(){}")


def test_go_program_adds_used_imports_and_dedups_test_setup():
    problem = {
        "test_setup": 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n',
        "test": "func TestX(t *testing.T) { assert.Equal(t, 1, F()) }\n",
    }
    code = 'import (\n    "testing"\n)\n// strings.ToUpper in a comment is ignored\nfunc F() int { return len(fmt.Sprint(1)) }\n'
    src = assemble_program("go", code, problem)
    assert src.count('"testing"') == 1
    assert 'import (\n    "fmt"\n)\n' in src and '"strings"' not in src


def test_rust_program_adds_main_and_missing_declaration_lines():
    problem = {
        "declaration": "\nuse rand::Rng;\nfn f(x: i32) -> i32 {\n",
        "test": "#[test] fn t() {}",
    }
    src = assemble_program("rust", "fn f(x: i32) -> i32 { x }", problem)
    assert src.startswith("fn main(){}\nuse rand::Rng;\nfn f(x: i32) -> i32 { x }")


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown language"):
        assemble_program("cobol", "", {"test": ""})


def test_check_toolchains_names_what_is_missing(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ToolchainError, match=r"(?s)node.*setup_toolchains\.sh"):
        check_toolchains(["js"])


@pytest.fixture
def executed(monkeypatch) -> dict[str, list[str]]:
    """What the real executors did: the languages prepared and the program keys run (the
    methods still run; they are only counted, as the runner exposes no counts itself)."""
    calls: dict[str, list[str]] = {"prepare": [], "run": []}
    real_prepare, real_run = Executor.prepare, Executor.run

    def prepare(self):
        calls["prepare"].append(self.language.name)
        return real_prepare(self)

    def run(self, program, slot):
        calls["run"].append(program.key)  # list.append: safe from the worker threads
        return real_run(self, program, slot)

    monkeypatch.setattr(Executor, "prepare", prepare)
    monkeypatch.setattr(Executor, "run", run)
    return calls


@pytest.mark.toolchains
def test_results_in_order_and_cache_makes_rescoring_free(tmp_path, executed):
    if missing_for("python") or missing_for("js"):
        pytest.skip("toolchains missing: bash eval/setup_toolchains.sh")
    programs = [
        Program("python", "assert True\n", "a"),
        Program("js", "console.assert(1 === 2);\n", "b"),
        Program("python", "raise ValueError('boom')\n", "c"),
        Program("js", "console.log('debug');\n", "d"),
        Program("python", "import sys\nsys.exit(0)\n", "e"),
    ]
    settings = Settings(timeouts=dict(DEFAULT_TIMEOUTS), sandbox=bwrap_usable())
    first = run_programs(programs, cache_dir=tmp_path, settings=settings, progress=False)
    assert [r.key for r in first] == ["a", "b", "c", "d", "e"]
    assert [r.passed for r in first] == [True, False, False, False, False]
    assert "Assertion failed" in first[1].detail and "boom" in first[2].detail
    assert sorted(executed["run"]) == ["a", "b", "c", "d", "e"]
    assert sorted(executed["prepare"]) == ["js", "python"]
    executed["run"].clear()
    executed["prepare"].clear()
    again = run_programs(programs, cache_dir=tmp_path, settings=settings, progress=False)
    # free: no program ran and no executor (toolchain, warm helper) was even started
    assert executed == {"prepare": [], "run": []}
    assert all(r.cached for r in again) and [r.passed for r in again] == [r.passed for r in first]
    changed = run_programs(
        [Program("python", "assert 2 > 1\n", "a2")],
        cache_dir=tmp_path,
        settings=settings,
        progress=False,
    )
    assert not changed[0].cached and changed[0].passed
    assert executed == {"prepare": ["python"], "run": ["a2"]}
