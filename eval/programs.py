"""Assemble the executed program for one candidate, exactly as bigcode-evaluation-harness does.

The harness (tasks/humanevalpack.py `process_results` + the code_eval_octopack metric) turns a
post-processed candidate into `program = candidate' + "\\n" + reference`, where the reference is
`"\\n" + problem["test"]` and `candidate'` is language-specific: an import header for Python and
C++ (C++ also drops everything from the first "int main"), the empty `Main` class removed for Java,
the `test_setup` package clause plus auto-detected standard imports for Go, and missing
declaration lines plus `fn main(){}` for Rust. Reimplemented here from that description so
verdicts match the reference harness; nothing here executes code.
"""

from __future__ import annotations

LANGUAGES = ("python", "js", "java", "go", "cpp", "rust")

#: The harness's Python import header (CodeGeeX's list); numpy must be importable where samples run.
PYTHON_IMPORTS = (
    "import math",
    "import re",
    "import sys",
    "import copy",
    "import datetime",
    "import itertools",
    "import collections",
    "import heapq",
    "import statistics",
    "import functools",
    "import hashlib",
    "import numpy",
    "import numpy as np",
    "import string",
    "from typing import *",
    "from collections import *",
)

#: Standard Go packages the harness adds to the import block when a candidate uses them.
GO_IMPORTS = (
    "math",
    "strings",
    "fmt",
    "strconv",
    "time",
    "bytes",
    "regexp",
    "sort",
    "math/rand",
    "crypto/md5",
)

#: The harness's C++ header, in its order (the `using namespace std;` line comes first).
CPP_HEADER = (
    "using namespace std;",
    "#include<stdlib.h>",
    "#include<algorithm>",
    "#include<cmath>",
    "#include<math.h>",
    "#include<numeric>",
    "#include<stdio.h>",
    "#include<vector>",
    "#include<set>",
    "#include<map>",
    "#include<queue>",
    "#include<stack>",
    "#include<list>",
    "#include<deque>",
    "#include<boost/any.hpp>",
    "#include<string>",
    "#include<climits>",
    "#include<cstring>",
    "#include<iostream>",
    "#include<sstream>",
    "#include<fstream>",
)

RUST_MAIN = "fn main(){}\n"


def reference(problem: dict) -> str:
    """The harness's reference string: the problem's test preceded by a newline."""
    return "\n" + problem["test"]


def assemble_program(language: str, code: str, problem: dict) -> str:
    """Return the full source the harness executes for candidate `code` of `problem`.

    `code` is the candidate as the harness holds it after post-processing (prompt base +
    completion). The result includes the harness's headers and `problem["test"]`.
    """
    if language == "python":
        candidate = ("\n".join(PYTHON_IMPORTS) + "\n" + code).strip()
    elif language == "cpp":
        candidate = ("\n".join(CPP_HEADER) + "\n" + code.split("int main")[0]).strip()
    elif language == "java":
        candidate = code.replace("public class Main {\n    }", "").strip()
    elif language == "js":
        candidate = code
    elif language == "go":
        candidate = _go_candidate(code, problem)
    elif language == "rust":
        candidate = _rust_candidate(code, problem["declaration"])
    else:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return candidate + "\n" + reference(problem)


def _go_candidate(code: str, problem: dict) -> str:
    """Prefix the test_setup package clause and the standard imports the candidate uses.

    Mirrors the harness for the first sample of a problem (the harness mutates `test_setup`
    across a problem's samples, an accident that later samples inherit; we treat each alone).
    """
    test_setup = problem["test_setup"] + "\n"
    for line in test_setup.split("\n"):
        line = line.replace("import", "").replace("(", "").replace(")", "").strip()
        if line.startswith('"') and line in code:
            test_setup = test_setup.replace(line, "")
    whole = test_setup + code + "\n" + reference(problem)
    used: list[str] = []
    for pkg in GO_IMPORTS:
        if '"' + pkg + '"' in whole:
            continue
        short = pkg.split("/")[-1]
        if short + "." not in whole:
            continue
        # The harness adds the short name (e.g. "rand", not "math/rand"), as it does.
        for line in whole.split("\n"):
            if short + "." in line and not line.strip().startswith("//"):
                if '"' + short + '"' not in used:
                    used.append('"' + short + '"')
                break
    imports = ""
    if used:
        imports = "import (\n" + "\n".join("    " + p for p in used) + "\n)\n"
    if "package main" in code and "package main" in test_setup:
        code = code.replace("package main", "")
    return test_setup + imports + code


def _rust_candidate(code: str, declaration: str) -> str:
    """Add `fn main(){}` and any declaration line (imports, helper signatures) the code lacks."""
    out = "" if "fn main()" in code else RUST_MAIN
    for line in declaration.split("\n"):
        stripped = line.strip()
        if stripped in code:
            continue
        if stripped.startswith("fn") and stripped.split("(")[0] in code:
            continue
        out += stripped + "\n"
    code = "fn main()".join(code.split("fn main()")[0:2])
    return out + code
