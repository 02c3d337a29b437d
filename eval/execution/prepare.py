"""`python -m eval.execution.prepare [LANG...]`: check toolchains and prebuild shared artefacts."""

from __future__ import annotations

import sys
import time

from eval.execution.toolchains import ToolchainError, eval_home, prepare
from eval.programs import LANGUAGES


def main(argv: list[str] | None = None) -> int:
    languages = (argv if argv is not None else sys.argv[1:]) or list(LANGUAGES)
    start = time.monotonic()
    try:
        prepare(languages)
    except ToolchainError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"execution toolchains ready in {eval_home()} ({time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
