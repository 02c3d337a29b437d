"""Sandboxed, parallel, cached execution of HumanEvalPack programs in six languages.

Public API: `Program`, `ExecResult`, `run_programs`, `check_toolchains`, `Settings`.
See docs/eval_execution.md for how sandboxing works and how to install the toolchains.
"""

from eval.execution.base import ExecResult, Program, Settings
from eval.execution.languages import DEFAULT_TIMEOUTS
from eval.execution.runner import run_programs
from eval.execution.toolchains import ToolchainError, check_toolchains

__all__ = [
    "DEFAULT_TIMEOUTS",
    "ExecResult",
    "Program",
    "Settings",
    "ToolchainError",
    "check_toolchains",
    "run_programs",
]
