"""Ground truth: every canonical solution passes and every buggy one fails, in all six languages.

Exceptions are data defects (octopack.md section 6), each pinned by name below so that any new
deviation fails the test:
- Go/27: the prompt imports "strings" and never uses it; Go refuses to compile (canonical fails).
- Go/95: the test depends on map iteration order; the canonical fails about 1 run in 5.
- Rust/32: the canonical Newton iteration has no cap and the test draws random polynomials; with
  some seeds it never ends. We seed the rand crate (Settings.rand_seed, default 2); see
  test_rust32_depends_on_the_seed.
- CPP/23: the buggy `strlen` is shadowed by <cstring>'s, so the buggy program passes.
- Declaration layout (Fix-tests): Go/10, 32, 38, 50 lose helper functions that only the prompt
  holds (compile errors) and CPP/38 carries half a body; canonical fails there.
The buggy sweep runs in the prompt layout only (the declaration layout changes only the text
before the body, and a fourth sweep would exceed the test budget). Buggy sweeps run with shorter C++ and Rust timeouts (the programs that hit them loop forever;
TIMEOUT_BOUND lists them); the benchmark re-runs everything with the harness's real timeouts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from eval.execution import DEFAULT_TIMEOUTS, Settings, run_programs
from eval.execution.sandbox import bwrap_usable
from eval.execution.toolchains import missing_for

_spec = importlib.util.spec_from_file_location(
    "_exec_helpers", Path(__file__).with_name("helpers_data.py")
)
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

pytestmark = [pytest.mark.slow, pytest.mark.toolchains]

CANONICAL_FAILS = {"Go/27"}
FLAKY = {"Go/95"}
BUGGY_PASSES = {"CPP/23"}
DECLARATION_CANONICAL_FAILS = {"Go/10", "Go/32", "Go/38", "Go/50", "CPP/38"}
#: Buggy programs that loop forever (reported as timeouts; octopack.md section 6 lists them).
TIMEOUT_BOUND = {
    "Python/10", "Python/156", "Python/160", "JavaScript/10", "JavaScript/76", "JavaScript/155", "JavaScript/156",
    "CPP/22", "CPP/123", "CPP/137", "CPP/156", "Java/10", "Java/39", "Java/76", "Rust/156",
}  # fmt: skip
#: Buggy programs that fail slowly: JavaScript/25 grows an array until V8 aborts ("invalid size
#: error"), ~4.5 s of its 10 s on an idle core; CPP/76 needs ~4.6 s of CPU of its 10 s (seen timing
#: out at load ~6 on 2 cores, with the executors before and after their refactor alike). On a
#: loaded machine either can hit the timeout first. Failed either way; only the status may differ.
#: Go/50 and Go/76 recurse without end: the Go runtime grows the goroutine stack to its 1 GB limit
#: and aborts, ~11 s of the 20 s each (both at once on an idle 2-core machine); CI's run with two
#: test workers saw both time out.
SLOW_FAILURES = {"JavaScript/25", "CPP/76", "Go/50", "Go/76"}
SWEEP_TIMEOUTS = dict(DEFAULT_TIMEOUTS, cpp=10.0, rust=30.0)


@pytest.fixture(scope="module")
def sweeps():
    """The three sweeps in one parallel run: {(layout, field): {task_id: ExecResult}}."""
    missing = [f"{lang}: {m}" for lang in helpers.LANGS for m in missing_for(lang)]
    if missing:
        pytest.fail("toolchains missing (run bash eval/setup_toolchains.sh): " + "; ".join(missing))
    programs, index = [], []
    for lang in helpers.LANGS:
        for problem in helpers.load(lang):
            for layout, build, fields in (
                ("prompt", helpers.prompt_layout, ("canonical_solution", "buggy_solution")),
                ("declaration", helpers.declaration_layout, ("canonical_solution",)),
            ):
                for field in fields:
                    programs.append(build(lang, problem, field))
                    index.append((layout, field, problem["task_id"]))
    settings = Settings(timeouts=SWEEP_TIMEOUTS, sandbox=bwrap_usable())
    results = run_programs(programs, settings=settings, progress=False)
    out: dict = {}
    for (layout, field, task), result in zip(index, results):
        out.setdefault((layout, field), {})[task] = result
    return out


def _failures(results: dict, lang_prefix: str, want_pass: bool) -> dict[str, str]:
    return {
        task: f"{r.status}: {r.detail[:300]}"
        for task, r in results.items()
        if task.startswith(lang_prefix + "/") and r.passed != want_pass
    }


PREFIX = {
    "python": "Python",
    "js": "JavaScript",
    "java": "Java",
    "go": "Go",
    "cpp": "CPP",
    "rust": "Rust",
}


@pytest.mark.parametrize("lang", helpers.LANGS)
def test_canonical_passes_prompt_layout(sweeps, lang):
    bad = _failures(sweeps[("prompt", "canonical_solution")], PREFIX[lang], True)
    assert set(bad) - FLAKY == {t for t in CANONICAL_FAILS if t.startswith(PREFIX[lang] + "/")}, bad
    if "Go/27" in bad:
        assert "imported and not used" in bad["Go/27"]


@pytest.mark.parametrize("lang", helpers.LANGS)
def test_buggy_fails_prompt_layout(sweeps, lang):
    results = sweeps[("prompt", "buggy_solution")]
    bad = _failures(results, PREFIX[lang], False)
    assert set(bad) == {t for t in BUGGY_PASSES if t.startswith(PREFIX[lang] + "/")}, bad
    timeouts = {
        t for t, r in results.items() if r.status == "timeout" and t.startswith(PREFIX[lang] + "/")
    }
    bound = {t for t in TIMEOUT_BOUND if t.startswith(PREFIX[lang] + "/")}
    assert bound <= timeouts <= bound | SLOW_FAILURES, timeouts


@pytest.mark.parametrize("lang", helpers.LANGS)
def test_canonical_passes_declaration_layout(sweeps, lang):
    bad = _failures(sweeps[("declaration", "canonical_solution")], PREFIX[lang], True)
    # Go/27's unused import is in the prompt only: with the declaration it compiles and passes.
    expected = {t for t in DECLARATION_CANONICAL_FAILS if t.startswith(PREFIX[lang] + "/")}
    assert set(bad) - FLAKY == expected, bad


def test_rust32_depends_on_the_seed():
    """Rust/32's canonical solution passes with the default seed but not with every seed."""
    problem = helpers.load("rust")[32]
    program = helpers.prompt_layout("rust", problem, "canonical_solution")
    statuses = {}
    for seed in (0, 1, 2):
        settings = Settings(
            timeouts=dict(DEFAULT_TIMEOUTS, rust=10.0), rand_seed=seed, sandbox=bwrap_usable()
        )
        statuses[seed] = run_programs([program], settings=settings, progress=False)[0].status
    assert statuses[2] == "passed"
    assert statuses[0] == "timeout"  # the Newton iteration never converges for this draw
    assert statuses[1] == "failed"
