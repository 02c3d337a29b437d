"""Go through shared test binaries (eval/execution/go_batch.py) gives `go test`'s verdicts.

Every program runs both ways in one test: batched (run_programs with enough Go programs to
batch) and alone (`go test main_test.go`, the executor's standard way, one program per call so
nothing is batched). Verdicts must agree program by program, and the programs the checker must
refuse are shown to have run the standard way.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest

from eval.execution import DEFAULT_TIMEOUTS, Program, Settings, run_programs
from eval.execution.base import Slot, make_slot_root
from eval.execution.go_batch import MIN_PROGRAMS, GoBatch
from eval.execution.sandbox import bwrap_usable
from eval.execution.toolchains import missing_for

pytestmark = pytest.mark.toolchains

HEADER = 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n{imports})\n'


def _go(body: str, imports: tuple[str, ...] = ()) -> str:
    extra = "".join(f'    "{i}"\n' for i in imports)
    return HEADER.format(imports=extra) + textwrap.dedent(body)


CASES = {
    "pass": (
        True,
        _go("""
        func Add(a, b int) int { return a + b }
        func TestAdd(t *testing.T) { assert.Equal(t, 3, Add(1, 2)) }
        """),
    ),
    "assert_fails": (
        True,
        _go("""
        func Add(a, b int) int { return a - b }
        func TestAdd(t *testing.T) { assert.Equal(t, 3, Add(1, 2)) }
        """),
    ),
    "second_test_fails": (
        True,
        _go("""
        func TestA(t *testing.T) { assert.True(t, true) }
        func TestB(t *testing.T) { assert.True(t, false) }
        """),
    ),
    "no_tests": (
        True,
        _go("""
        var _ = assert.New
        var _ = testing.Verbose
        func helper() int { return 1 }
        var _ = helper
        """),
    ),
    "unused_import": (
        True,
        _go(
            """
        func TestA(t *testing.T) { assert.True(t, true) }
        """,
            ("strings",),
        ),
    ),
    "vet_printf": (
        True,
        _go(
            """
        func TestA(t *testing.T) { assert.Equal(t, "1", fmt.Sprintf("%d", "x")) }
        """,
            ("fmt",),
        ),
    ),
    "exit_zero_in_test": (
        True,
        _go(
            """
        func TestA(t *testing.T) { assert.True(t, true); os.Exit(0) }
        """,
            ("os",),
        ),
    ),
    "panics": (
        True,
        _go("""
        func TestA(t *testing.T) { var m map[string]int; m["a"] = 1; assert.True(t, true) }
        """),
    ),
    "loops": (
        True,
        _go("""
        func TestA(t *testing.T) { for { assert.True(t, true) } }
        """),
    ),
    "init_runs_code": (
        False,
        _go("""
        var ready = false
        func init() { ready = true }
        func TestA(t *testing.T) { assert.True(t, ready) }
        """),
    ),
    "initialiser_calls": (
        False,
        _go("""
        var n = compute()
        func compute() int { return 2 }
        func TestA(t *testing.T) { assert.Equal(t, 2, n) }
        """),
    ),
    "type_name_visible": (
        False,
        _go(
            """
        type Point struct{ X int }
        func TestA(t *testing.T) { assert.Equal(t, "main.Point", fmt.Sprintf("%T", Point{})) }
        """,
            ("fmt",),
        ),
    ),
    "test_main": (
        False,
        _go(
            """
        func TestMain(m *testing.M) { os.Exit(0) }
        func TestA(t *testing.T) { assert.True(t, false) }
        """,
            ("os",),
        ),
    ),
    "does_not_parse": (
        False,
        _go("""
        func TestA(t *testing.T) { assert.True(t, true)
        """),
    ),
}


@pytest.fixture(scope="module")
def settings():
    if missing_for("go"):
        pytest.skip("Go toolchain missing: bash eval/setup_toolchains.sh")
    timeouts = dict(DEFAULT_TIMEOUTS, go=8.0)
    return Settings(timeouts=timeouts, sandbox=bwrap_usable())


def test_batched_verdicts_equal_go_test(settings):
    programs = [Program("go", src, name) for name, (_, src) in CASES.items()]
    assert len(programs) >= MIN_PROGRAMS
    batched = {
        r.key: r for r in run_programs(programs, settings=settings, progress=False, workers=2)
    }
    alone = {
        p.key: run_programs([p], settings=settings, progress=False, workers=1)[0] for p in programs
    }
    for name in CASES:
        assert batched[name].passed == alone[name].passed, (name, batched[name], alone[name])
    failed = {name for name, r in alone.items() if not r.passed}
    assert {
        "pass",
        "no_tests",
        "init_runs_code",
        "initialiser_calls",
        "type_name_visible",
    }.isdisjoint(failed)
    assert {"assert_fails", "second_test_fails", "unused_import", "vet_printf", "exit_zero_in_test",
            "panics", "loops", "does_not_parse"} <= failed  # fmt: skip
    assert {alone["loops"].status, batched["loops"].status} <= {"timeout", "failed"}
    assert alone["unused_import"].status == batched["unused_import"].status == "compile_error"
    assert "TestB" in batched["second_test_fails"].detail  # wrapper names are not shown
    assert "__p" not in batched["second_test_fails"].detail


def test_checker_decides_which_programs_share_a_binary(settings):
    programs = [Program("go", src, name) for name, (_, src) in CASES.items()]
    root = make_slot_root(0)  # a fresh base the sandbox uids can traverse, as run_programs makes
    slot = Slot(0, root)
    try:
        batch = GoBatch(settings, root.parent / "go-batch")
        batch.build(programs, slot)
    finally:
        slot.close()
        shutil.rmtree(root.parent, ignore_errors=True)
    shared = {p.key for p in programs if batch.lookup(p) is not None}
    # Refused by the checker, or failing to compile or vet: judged by `go test` itself.
    expected = {name for name, (may_batch, _) in CASES.items() if may_batch}
    assert shared == expected - {"unused_import", "vet_printf"}
    binaries = {batch.lookup(p).binary for p in programs if p.key in shared}
    assert len(binaries) == 1
