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
from eval.execution.executors import EXECUTOR_VERSION, EXECUTORS, Executor


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
    unknown = [lang for lang in languages if lang not in EXECUTORS]
    if unknown:
        raise ValueError(f"unknown language(s) {unknown}; expected one of {sorted(EXECUTORS)}")


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
    if todo:
        needed = sorted({programs[i].language for i in todo})
        toolchains.check_toolchains(needed)
        executors: dict[str, Executor] = {}
        for lang in needed:
            executors[lang] = EXECUTORS[lang](settings)
            executors[lang].prepare()
        n_workers = max(1, min(workers or default_workers(), len(todo)))
        # CPU tokens bound the programs that run fresh at once; slots (sandbox roots, uids, warm
        # helpers) number twice that, so up to n_workers stragglers can wait out their timeouts.
        tokens = threading.Semaphore(n_workers)
        n_slots = min(2 * n_workers, len(todo))
        base = Path(tempfile.mkdtemp(prefix="octojax-exec-"))
        os.chmod(base, 0o755)
        slots: queue.Queue[Slot] = queue.Queue()
        all_slots = [Slot(i, make_slot_root(i, base)) for i in range(n_slots)]
        for slot in all_slots:
            slots.put(slot)
        for lang, executor in executors.items():
            executor.prepare_batch(
                [programs[i] for i in todo if programs[i].language == lang], all_slots[0]
            )
        lock = threading.Lock()
        # Interleave languages so both workers stay busy and slow compilers overlap fast ones.
        order = sorted(todo, key=lambda i: (programs[i].language, i))

        def work(i: int) -> None:
            program = programs[i]
            tokens.acquire()
            released = threading.Event()

            def release_token() -> None:
                with lock:
                    if not released.is_set():
                        released.set()
                        tokens.release()

            timer = threading.Timer(straggler_after(settings, program.language), release_token)
            timer.daemon = True
            timer.start()
            slot = slots.get()
            try:
                start = time.monotonic()
                try:
                    result = executors[program.language].run(program, slot)
                except Exception as exc:  # noqa: BLE001 - a sandbox fault must not stop the run
                    result = ExecResult(program.key, False, "error",
                                        f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}",
                                        time.monotonic() - start)  # fmt: skip
                results[i] = result
                if cache is not None:
                    cache.put(keys[i], result)
            finally:
                timer.cancel()
                release_token()
                slots.put(slot)
                with lock:
                    bar.update(1)

        try:
            with ThreadPoolExecutor(max_workers=n_slots) as pool:
                list(pool.map(work, order))
        finally:
            for slot in all_slots:
                slot.close()
            shutil.rmtree(base, ignore_errors=True)
    bar.close()
    return results  # type: ignore[return-value]
