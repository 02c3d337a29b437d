"""Run many programs in parallel worker slots, with the result cache and a progress bar."""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from eval.execution import sandbox, toolchains
from eval.execution.base import ExecResult, Program, Settings, Slot, make_slot_root
from eval.execution.cache import ResultCache, cache_key
from eval.execution.executors import EXECUTOR_VERSION, Executor
from eval.execution.languages import LANGUAGE_TABLE


def default_workers() -> int:
    """One worker per core (more do not help on these 2-core machines)."""
    return max(1, len(os.sched_getaffinity(0)))


def straggler_after(settings: Settings, language: str) -> float:
    """Seconds after which a still-running program stops holding a CPU token.

    Buggy programs that loop forever spend the reference harness's whole wall timeout (60 s for
    C++); holding a worker for it leaves a core idle-waiting in the sense that no other program can
    start. Past this point the program keeps its slot and its own timeout but no longer blocks the
    next program, so several timeouts overlap. Every program first runs alone on its core for at
    least this long (canonical solutions finish in well under a second).
    """
    return max(3.0, 0.1 * settings.timeouts[language])


def _check_request(programs: list[Program], settings: Settings) -> None:
    """Fail early on a sandbox that cannot work here or a language without an executor."""
    if settings.sandbox and not sandbox.bwrap_usable():
        raise toolchains.ToolchainError(
            f"bubblewrap is missing or unusable here; run {toolchains.SETUP_SCRIPT} "
            "or pass Settings(sandbox=False) to rely on uids, rlimits and process-group kills only"
        )
    languages = sorted({p.language for p in programs})
    unknown = [lang for lang in languages if lang not in LANGUAGE_TABLE]
    if unknown:
        raise ValueError(f"unknown language(s) {unknown}; expected one of {sorted(LANGUAGE_TABLE)}")


def _answer_from_cache(
    programs: list[Program],
    settings: Settings,
    cache: ResultCache | None,
    results: list[ExecResult | None],
    keys: list[str | None],
) -> list[int]:
    """Fill `results` (and `keys`) from the cache; return the indices still to run."""
    todo: list[int] = []
    for i, program in enumerate(programs):
        if cache is not None:
            keys[i] = cache_key(program, settings, EXECUTOR_VERSION)
            hit = cache.get(keys[i], program.key)
            if hit is not None:
                results[i] = hit
                continue
        todo.append(i)
    return todo


def _start_executors(languages: list[str], settings: Settings) -> dict[str, Executor]:
    """One prepared executor per language (toolchains checked, shared artefacts built)."""
    toolchains.check_toolchains(dict.fromkeys(LANGUAGE_TABLE[lang].checks for lang in languages))
    executors: dict[str, Executor] = {}
    for lang in languages:
        executors[lang] = Executor(LANGUAGE_TABLE[lang], settings)
        executors[lang].prepare()
    return executors


class _Workers:
    """The worker slots of one run and the CPU tokens that bound fresh programs.

    Tokens number `n_workers`; slots (sandbox roots, uids, warm helpers) twice that, so up to
    `n_workers` stragglers can wait out their timeouts while fresh programs keep both cores busy.
    """

    def __init__(self, n_workers: int, n_slots: int, settings: Settings):
        self.settings = settings
        self.tokens = threading.Semaphore(n_workers)
        self.lock = threading.Lock()
        self.base = Path(tempfile.mkdtemp(prefix="octojax-exec-"))
        os.chmod(self.base, 0o755)
        self.all_slots = [Slot(i, make_slot_root(i, self.base)) for i in range(n_slots)]
        # Last freed, first reused: the slots in use keep their warm helpers (javac server,
        # Python parent, Go cache copy); the spare slots start only when programs straggle.
        self.free: queue.LifoQueue[Slot] = queue.LifoQueue()
        for slot in reversed(self.all_slots):
            self.free.put(slot)

    def run_one(self, executor: Executor, program: Program) -> ExecResult:
        """Run `program` in a free slot holding a token until done or straggling; never raises."""
        self.tokens.acquire()
        released = threading.Event()

        def release_token() -> None:
            with self.lock:
                if not released.is_set():
                    released.set()
                    self.tokens.release()

        timer = threading.Timer(straggler_after(self.settings, program.language), release_token)
        timer.daemon = True
        timer.start()
        slot = self.free.get()
        start = time.monotonic()
        try:
            return executor.run(program, slot)
        except Exception as exc:  # noqa: BLE001 - a sandbox fault must not stop the run
            return ExecResult(program.key, False, "error",
                              f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}",
                              time.monotonic() - start)  # fmt: skip
        finally:
            timer.cancel()
            release_token()
            self.free.put(slot)

    def close(self) -> None:
        for slot in self.all_slots:
            slot.close()
        shutil.rmtree(self.base, ignore_errors=True)


def _execute(
    programs: list[Program],
    todo: list[int],
    settings: Settings,
    workers: int | None,
    on_result,
) -> None:
    """Run programs[i] for i in `todo` in parallel; `on_result(i, result)` as each finishes."""
    needed = sorted({programs[i].language for i in todo})
    executors = _start_executors(needed, settings)
    n_workers = max(1, min(workers or default_workers(), len(todo)))
    pool_slots = _Workers(n_workers, min(2 * n_workers, len(todo)), settings)
    try:
        for lang, executor in executors.items():
            batch = [programs[i] for i in todo if programs[i].language == lang]
            executor.prepare_batch(batch, pool_slots.all_slots[0])
        # Interleave languages so both workers stay busy and slow compilers overlap fast ones.
        order = sorted(todo, key=lambda i: (programs[i].language, i))

        def work(i: int) -> None:
            on_result(i, pool_slots.run_one(executors[programs[i].language], programs[i]))

        with ThreadPoolExecutor(max_workers=len(pool_slots.all_slots)) as pool:
            list(pool.map(work, order))
    finally:
        pool_slots.close()


def run_programs(
    programs: list[Program],
    *,
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    settings: Settings | None = None,
) -> list[ExecResult]:
    """Execute `programs` and return their results in input order.

    Unchanged programs are answered from `cache_dir` (when given) without running. Programs
    faulting, looping or attacking the machine get a failing status; the run goes on.
    """
    settings = settings or Settings(sandbox=sandbox.bwrap_usable())
    _check_request(programs, settings)
    cache = ResultCache(cache_dir) if cache_dir is not None else None
    results: list[ExecResult | None] = [None] * len(programs)
    keys: list[str | None] = [None] * len(programs)
    todo = _answer_from_cache(programs, settings, cache, results, keys)
    bar = tqdm(total=len(programs), initial=len(programs) - len(todo), disable=not progress,
               desc="executing", unit="prog", dynamic_ncols=True)  # fmt: skip
    bar_lock = threading.Lock()

    def on_result(i: int, result: ExecResult) -> None:
        results[i] = result
        if cache is not None:
            cache.put(keys[i], result)
        with bar_lock:
            bar.update(1)

    if todo:
        _execute(programs, todo, settings, workers, on_result)
    bar.close()
    return results  # type: ignore[return-value]
