"""Rust through one shared test binary (eval/execution/rust_batch.py) gives standalone verdicts.

Every program runs both ways in one test: batched (run_programs with enough Rust programs to
batch) and alone (one program per call, so nothing is batched: its own rustc check and --test
build). Verdicts must agree program by program; the programs `admissible` must refuse, and those
whose module fails to build, are shown to have run the standard way.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest

from eval.execution import DEFAULT_TIMEOUTS, Program, Settings, run_programs, toolchains
from eval.execution.base import Slot, make_slot_root
from eval.execution.rust_batch import MIN_PROGRAMS, RustBatch, admissible, tokens
from eval.execution.sandbox import bwrap_usable
from eval.execution.toolchains import missing_for

pytestmark = pytest.mark.toolchains


def _rs(body: str) -> str:
    return "fn main(){}\nuse std::collections::HashMap;\n" + textwrap.dedent(body)


def _tests(body: str) -> str:
    return "\n#[cfg(test)]\nmod tests {\n    use super::*;\n" + textwrap.dedent(body) + "}\n"


ADD = "fn add(a: i32, b: i32) -> i32 { a + b }\n"
# name -> (may share the binary, source)
CASES = {
    "pass": (True, _rs(ADD + _tests("#[test] fn t() { assert_eq!(add(1, 2), 3); }"))),
    "assert_fails": (True, _rs(ADD + _tests("#[test] fn t() { assert_eq!(add(1, 2), 4); }"))),
    "second_test_fails": (True, _rs(ADD + _tests(
        "#[test] fn a() { assert!(true); }\n#[test] fn b() { assert!(add(0, 0) == 1); }"))),
    "no_tests": (True, _rs(ADD + "fn helper() -> usize { HashMap::<i32, i32>::new().len() }\n")),
    "should_panic": (True, _rs(ADD + _tests("#[test] #[should_panic] fn t() { panic!(\"x\"); }"))),
    "ignored_fails": (True, _rs(ADD + _tests("#[test] #[ignore] fn t() { assert!(false); }"))),
    "overflow_panics": (True, _rs(ADD + _tests("#[test] fn t() { assert_eq!(add(i32::MAX, 1), 0); }"))),
    "exit_zero_in_test": (True, _rs(ADD + _tests(
        "#[test] fn a() { std::process::exit(0); }\n#[test] fn b() { assert!(false); }"))),
    "loops": (True, _rs(ADD + _tests("#[test] fn t() { loop { std::hint::black_box(add(1, 1)); } }"))),
    "rand_seeded": (True, _rs("use rand::Rng;\n" + _tests(
        "#[test] fn t() { let x: u32 = rand::thread_rng().gen_range(0, 10); assert!(x < 10); }"))),
    "test_only_type_error": (True, _rs(ADD + _tests("#[test] fn t() { assert_eq!(add(1, \"2\"), 3); }"))),
    "check_only_error": (True, "fn main(){}\n#[cfg(not(test))]\nfn f() -> i32 { \"no\" }\n"
                          + _tests("#[test] fn t() { assert!(true); }")),
    "does_not_parse": (True, _rs("fn add(a: i32) -> i32 { a +\n" + _tests("#[test] fn t() {}"))),
    "deny_dead_code": (True, _rs("#[deny(dead_code)]\nfn never_called() {}\n")),
    "crate_path": (False, _rs(ADD + _tests("#[test] fn t() { assert_eq!(crate::add(1, 2), 3); }"))),
    "top_level_super": (False, _rs("use super::*;\n" + ADD + _tests("#[test] fn t() {}"))),
    "module_path": (False, _rs(_tests("#[test] fn t() { assert_eq!(module_path!(), \"test::tests\"); }"))),
    "thread_name": (False, _rs(_tests(
        "#[test] fn t() { assert_eq!(std::thread::current().name(), Some(\"tests::t\")); }"))),
    "unsafe_code": (False, _rs(_tests("#[test] fn t() { let x = unsafe { *(&1 as *const i32) }; assert_eq!(x, 1); }"))),
}  # fmt: skip


@pytest.fixture(scope="module")
def settings():
    if missing_for("rust"):
        pytest.skip("Rust toolchain missing: bash eval/setup_toolchains.sh")
    timeouts = dict(DEFAULT_TIMEOUTS, rust=8.0)
    return Settings(timeouts=timeouts, sandbox=bwrap_usable())


def test_batched_verdicts_equal_standalone(settings):
    programs = [Program("rust", src, name) for name, (_, src) in CASES.items()]
    assert len(programs) >= MIN_PROGRAMS
    batched = {
        r.key: r for r in run_programs(programs, settings=settings, progress=False, workers=2)
    }
    alone = {
        p.key: run_programs([p], settings=settings, progress=False, workers=1)[0] for p in programs
    }
    for name in CASES:
        assert batched[name].passed == alone[name].passed, (name, batched[name], alone[name])
        assert batched[name].status == alone[name].status, (name, batched[name], alone[name])
    passed = {name for name, r in alone.items() if r.passed}
    assert passed == {"pass", "no_tests", "should_panic", "ignored_fails", "exit_zero_in_test",
                      "rand_seeded", "crate_path", "module_path", "thread_name", "unsafe_code"}  # fmt: skip
    assert alone["loops"].status == "timeout"
    assert alone["deny_dead_code"].status == "compile_error"  # a dead function, denied
    assert (
        "b" in batched["second_test_fails"].detail
        and "p2::" not in batched["second_test_fails"].detail
    )
    assert "tests::b" in batched["second_test_fails"].detail


def test_admissible_decides_which_programs_share_a_binary(settings):
    programs = [Program("rust", src, name) for name, (_, src) in CASES.items()]
    root = make_slot_root(0)  # a fresh base the sandbox uids can traverse, as run_programs makes
    slot = Slot(0, root)
    rustc = toolchains.real_rustc()
    try:
        batch = RustBatch(settings, root.parent / "rust-batch", rustc, toolchains.rust_externs(),
                          compile_as_root=not toolchains._usable_by_others(rustc),
                          env={"OCTOJAX_RAND_SEED": "2"})  # fmt: skip
        batch.build(programs, slot)
    finally:
        slot.close()
        shutil.rmtree(root.parent, ignore_errors=True)
    shared = {p.key for p in programs if batch.lookup(p) is not None}
    expected = {name for name, (may_batch, _) in CASES.items() if may_batch}
    # Failing to build as a module (or at all): judged by a standalone compile.
    assert shared == expected - {"test_only_type_error", "check_only_error", "does_not_parse",
                                 "deny_dead_code"}  # fmt: skip
    assert batch.lookup(programs[0]).tests == ("p0::tests::t",)
    assert len({batch.lookup(p).binary for p in programs if p.key in shared}) == 1


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("mod tests { use super::*; }", True),
        ("mod a { mod b { use super::super::x; } }", True),
        ("mod a { use super::super::x; }", False),
        ("fn f() { super::g() }", False),
        ("mod a;", False),
        ("fn f() {} #![allow(dead_code)]", False),
        ("//! crate docs\nfn f() {}", False),
        ('fn f() -> &\'static str { "crate::x // }" }', True),
        ('fn f() -> &\'static str { r#"unsafe "# }', True),
        ("fn f(c: char) -> bool { c == '{' } /* crate /* nested */ */", True),
        ("fn f<'a>(x: &'a str) -> &'a str { x }", True),
        ('fn f() { let s = "unterminated; }', False),
        ("fn f() { {", False),
        ('fn f() { std::env::var("X"); }', False),
    ],
)
def test_admissible_scan(source, ok):
    assert admissible(source) is ok


def test_tokens_drop_literals_and_comments():
    assert tokens("let x = 'a'; // crate\nlet y = b\"unsafe\";") == [
        "let", "x", "=", ";", "let", "y", "=", ";"]  # fmt: skip


def test_warnings_of_many_programs_do_not_break_the_batch(settings, caplog):
    """Thousands of warnings (unused functions, as every HumanEvalPack program has) exceed the
    sandbox's 1 MiB output cap in JSON; the batch build must still succeed rather than silently
    fall back to one compile per program."""
    unused = "".join(f"fn unused_{i}(x: i32) -> i32 {{ x + {i} }}\n" for i in range(300))
    programs = [
        Program("rust", _rs(unused + ADD + _tests(f"#[test] fn t() {{ assert_eq!(add({k}, 1), {k + 1}); }}")), f"w{k}")
        for k in range(8)
    ]  # fmt: skip
    root = make_slot_root(0)
    slot = Slot(0, root)
    rustc = toolchains.real_rustc()
    try:
        batch = RustBatch(settings, root.parent / "rust-batch", rustc, toolchains.rust_externs(),
                          compile_as_root=not toolchains._usable_by_others(rustc), env={})  # fmt: skip
        with caplog.at_level("WARNING", logger="eval.execution.rust_batch"):
            batch.build(programs, slot)
    finally:
        slot.close()
        shutil.rmtree(root.parent, ignore_errors=True)
    assert all(batch.lookup(p) is not None for p in programs), caplog.text
