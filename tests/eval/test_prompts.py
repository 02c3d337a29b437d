"""Prompt construction against hand-written expected strings (problem 23, `strlen`, in every language).

The field literals below were copied from the data files; the expected prompts were assembled by
hand following bigcode-evaluation-harness's humanevalpack task, so a change in either the code
or the data makes these fail.
"""

from __future__ import annotations

import pytest

from eval.prompts import TEMPLATES, TemplateError, build_prompt
from eval.tasks import (
    EXPLAIN_DESCRIBE,
    EXPLAIN_SYNTHESIZE,
    FIX_DOCS,
    FIX_TESTS,
    SYNTHESIZE,
    TASKS,
    DescriptionsError,
    Entry,
    Task,
)

DESCRIPTION = "Returns the number of characters in the string."

# ---- fields of problem 23, copied from the data --------------------------------------------
PY_PROMPT = (
    '\n\ndef strlen(string: str) -> int:\n    """ Return length of given string\n'
    "    >>> strlen('')\n    0\n    >>> strlen('abc')\n    3\n    \"\"\"\n"
)
PY_DECL = "def strlen(string: str) -> int:\n"
PY_BUGGY = "    return len(string) - 1\n"
PY_CANON = "    return len(string)\n"
PY_TEST = (
    "\n\n\n\n\ndef check(strlen):\n    assert strlen('') == 0\n    assert strlen('x') == 1\n"
    "    assert strlen('asdasnakj') == 9\n\ncheck(strlen)"
)
PY_INSTRUCTION = (
    "Write a Python function `strlen(string: str) -> int` to solve the following problem:\n"
    "Return length of given string\n>>> strlen('')\n0\n>>> strlen('abc')\n3"
)

JS_PROMPT = (
    "/* Return length of given string\n  >>> strlen('')\n  0\n  >>> strlen('abc')\n  3\n  */\n"
    "const strlen = (string) => {\n"
)
JS_DECL = "\nconst strlen = (string) => {\n"
JS_BUGGY = "  return string.length - 1;\n}\n\n"
JS_CANON = "  return string.length;\n}\n\n"
JS_TEST = (
    "const testStrlen = () => {\n  console.assert(strlen('') === 0)\n"
    "  console.assert(strlen('x') === 1)\n  console.assert(strlen('asdasnakj') === 9)\n}\n\n"
    "testStrlen()\n"
)

JAVA_PROMPT = (
    "import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n    /**\n"
    '    Return length of given string\n    >>> strlen("")\n    0\n    >>> strlen("abc")\n'
    "    3\n     */\n    public int strlen(String string) {\n"
)
JAVA_DECL = (
    "import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n"
    "    public int strlen(String string) {\n"
)
JAVA_BUGGY = "        return string.length() - 1;\n    }\n}"
JAVA_CANON = "        return string.length();\n    }\n}"
JAVA_TEST = (
    "public class Main {\n    public static void main(String[] args) {\n"
    "        Solution s = new Solution();\n        List<Boolean> correct = Arrays.asList(\n"
    '                s.strlen("") == 0,\n                s.strlen("x") == 1,\n'
    '                s.strlen("asdasnakj") == 9\n        );\n'
    "        if (correct.contains(false)) {\n            throw new AssertionError();\n"
    "        }\n    }\n}"
)

GO_PROMPT = (
    "\n// Return length of given string\n// >>> Strlen('')\n// 0\n// >>> Strlen('abc')\n"
    "// 3\nfunc Strlen(str string) int {\n"
)
GO_DECL = "\nfunc Strlen(str string) int {\n"
GO_BUGGY = "    return len(str) - 1\n}\n\n"
GO_CANON = "    return len(str)\n}\n\n"
GO_TEST = (
    "func TestStrlen(t *testing.T) {\n    assert := assert.New(t)\n"
    '    assert.Equal(0, Strlen(""))\n    assert.Equal(1, Strlen("x"))\n'
    '    assert.Equal(9, Strlen("asdasnakj"))\n}\n'
)

CPP_PROMPT = (
    '/*\nReturn length of given string\n>>> strlen("")\n0\n>>> strlen("abc")\n3\n*/\n'
    "#include<stdio.h>\n#include<string>\nusing namespace std;\nint strlen(string str){\n"
)
CPP_DECL = (
    "#include<stdio.h>\n#include<math.h>\n#include<string>\nusing namespace std;\n"
    "#include<algorithm>\n#include<stdlib.h>\nint strlen(string str){\n"
)
CPP_BUGGY = "    return str.length() - 1;\n}\n"
CPP_CANON = "    return str.length();\n}\n"
CPP_TEST = (
    '#undef NDEBUG\n#include<assert.h>\nint main(){\n    assert (strlen("") == 0);\n'
    '    assert (strlen("x") == 1);\n     assert (strlen("asdasnakj") == 9);\n}\n'
)

RS_USES = (
    "use std::{slice::Iter, cmp::{max, self}, mem::replace, collections::{HashSet, HashMap}, "
    "ops::Index, ascii::AsciiExt};\nuse rand::Rng;\nuse regex::Regex;\nuse md5;\n"
    "use std::any::{Any, TypeId};\n"
)
RS_PROMPT = (
    "fn main(){}\n\n" + RS_USES + "\n/*\n Return length of given string\n    \n*/\n"
    "fn strlen(strings:String) -> i32{\n\n"
)
RS_DECL = "\n" + RS_USES + "\nfn strlen(strings:String) -> i32{\n\n"
RS_BUGGY = "\n    return strings.len() as i32 - 1;\n}\n"
RS_CANON = "\n    return strings.len() as i32;\n}\n"
RS_TEST = (
    "\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n #[test]\n    fn test_strlen() {\n"
    '        assert!(strlen("".to_string()) == 0);\n'
    '        assert!(strlen("x".to_string()) == 1);\n'
    '        assert!(strlen("asdasnakj".to_string()) == 9);\n    }\n\n}\n'
)

FIELDS = {
    "python": (PY_PROMPT, PY_DECL, PY_BUGGY, PY_CANON, PY_TEST),
    "js": (JS_PROMPT, JS_DECL, JS_BUGGY, JS_CANON, JS_TEST),
    "java": (JAVA_PROMPT, JAVA_DECL, JAVA_BUGGY, JAVA_CANON, JAVA_TEST),
    "go": (GO_PROMPT, GO_DECL, GO_BUGGY, GO_CANON, GO_TEST),
    "cpp": (CPP_PROMPT, CPP_DECL, CPP_BUGGY, CPP_CANON, CPP_TEST),
    "rust": (RS_PROMPT, RS_DECL, RS_BUGGY, RS_CANON, RS_TEST),
}

DESCRIBE_66 = (
    "Provide a concise natural language description of the code using at most 66 characters."
)

# ---- expected prompts, octocoder template, every task and language --------------------------
OCTOCODER = {
    (FIX_TESTS, "python"): "Question: Fix bugs in strlen.\ndef strlen(string: str) -> int:\n"
    "    return len(string) - 1\n\n\n\n\n\n\ndef check(strlen):\n    assert strlen('') == 0\n"
    "    assert strlen('x') == 1\n    assert strlen('asdasnakj') == 9\n\ncheck(strlen)\n\n"
    "Answer:\ndef strlen(string: str) -> int:",
    (FIX_DOCS, "python"): "Question: Fix bugs in strlen.\n\n\ndef strlen(string: str) -> int:\n"
    '    """ Return length of given string\n    >>> strlen(\'\')\n    0\n'
    '    >>> strlen(\'abc\')\n    3\n    """\n    return len(string) - 1\n\n\nAnswer:\n\n\n'
    'def strlen(string: str) -> int:\n    """ Return length of given string\n'
    "    >>> strlen('')\n    0\n    >>> strlen('abc')\n    3\n    \"\"\"",
    (EXPLAIN_DESCRIBE, "python"): f"Question: {DESCRIBE_66}\ndef strlen(string: str) -> int:\n"
    "    return len(string)\n\n\nAnswer:",
    (EXPLAIN_SYNTHESIZE, "python"): "Question: Write functional code in Python according to the "
    f"description.\n{DESCRIPTION}\n\nAnswer:\ndef strlen(string: str) -> int:",
    (SYNTHESIZE, "python"): "Question: Write a Python function `strlen(string: str) -> int` to "
    "solve the following problem:\nReturn length of given string\n>>> strlen('')\n0\n"
    ">>> strlen('abc')\n3\n\nAnswer:\n\n\ndef strlen(string: str) -> int:\n"
    '    """ Return length of given string\n    >>> strlen(\'\')\n    0\n'
    '    >>> strlen(\'abc\')\n    3\n    """',
    # JavaScript
    (FIX_TESTS, "js"): "Question: Fix bugs in strlen.\n\nconst strlen = (string) => {\n"
    "  return string.length - 1;\n}\n\n\nconst testStrlen = () => {\n"
    "  console.assert(strlen('') === 0)\n  console.assert(strlen('x') === 1)\n"
    "  console.assert(strlen('asdasnakj') === 9)\n}\n\ntestStrlen()\n\n\nAnswer:\n\n"
    "const strlen = (string) => {",
    (FIX_DOCS, "js"): "Question: Fix bugs in strlen.\n/* Return length of given string\n"
    "  >>> strlen('')\n  0\n  >>> strlen('abc')\n  3\n  */\nconst strlen = (string) => {\n"
    "  return string.length - 1;\n}\n\n\n\nAnswer:\n/* Return length of given string\n"
    "  >>> strlen('')\n  0\n  >>> strlen('abc')\n  3\n  */\nconst strlen = (string) => {",
    (EXPLAIN_DESCRIBE, "js"): f"Question: {DESCRIBE_66}\n\nconst strlen = (string) => {{\n"
    "  return string.length;\n}\n\n\n\nAnswer:",
    (EXPLAIN_SYNTHESIZE, "js"): "Question: Write functional code in JavaScript according to the "
    f"description.\n{DESCRIPTION}\n\nAnswer:\n\nconst strlen = (string) => {{",
    (SYNTHESIZE, "js"): "Question: Write a JavaScript function `const strlen = (string)` to "
    "solve the following problem:\nReturn length of given string\n>>> strlen('')\n0\n"
    ">>> strlen('abc')\n3\n\nAnswer:\n/* Return length of given string\n  >>> strlen('')\n"
    "  0\n  >>> strlen('abc')\n  3\n  */\nconst strlen = (string) => {",
    # Java
    (FIX_TESTS, "java"): "Question: Fix bugs in strlen.\n"
    + JAVA_DECL
    + JAVA_BUGGY
    + "\n"
    + JAVA_TEST
    + "\n\nAnswer:\nimport java.util.*;\nimport java.lang.*;\n\nclass Solution {\n"
    "    public int strlen(String string) {",
    (FIX_DOCS, "java"): "Question: Fix bugs in strlen.\n"
    + JAVA_PROMPT
    + JAVA_BUGGY
    + "\n\nAnswer:\n"
    + JAVA_PROMPT[:-1],
    (EXPLAIN_DESCRIBE, "java"): f"Question: {DESCRIBE_66}\n"
    + JAVA_DECL
    + JAVA_CANON
    + "\n\nAnswer:",
    (EXPLAIN_SYNTHESIZE, "java"): "Question: Write functional code in Java according to the "
    f"description.\n{DESCRIPTION}\n\nAnswer:\n" + JAVA_DECL[:-1],
    (SYNTHESIZE, "java"): "Question: Write a Java function `public int strlen(String string)` "
    'to solve the following problem:\nReturn length of given string\n>>> strlen("")\n0\n'
    '>>> strlen("abc")\n3\n\nAnswer:\n' + JAVA_PROMPT[:-1],
    # Go
    (FIX_TESTS, "go"): "Question: Fix bugs in Strlen.\n\nfunc Strlen(str string) int {\n"
    "    return len(str) - 1\n}\n\n\n" + GO_TEST + "\n\nAnswer:\n\nfunc Strlen(str string) int {",
    (FIX_DOCS, "go"): "Question: Fix bugs in Strlen.\n"
    + GO_PROMPT
    + GO_BUGGY
    + "\n\nAnswer:\n"
    + GO_PROMPT[:-1],
    (EXPLAIN_DESCRIBE, "go"): f"Question: {DESCRIBE_66}\n\nfunc Strlen(str string) int {{\n"
    "    return len(str)\n}\n\n\n\nAnswer:",
    (EXPLAIN_SYNTHESIZE, "go"): "Question: Write functional code in Go according to the "
    f"description.\n{DESCRIPTION}\n\nAnswer:\n\nfunc Strlen(str string) int {{",
    (SYNTHESIZE, "go"): "Question: Write a Go function `func Strlen(str string) int` to solve "
    "the following problem:\nReturn length of given string\n>>> Strlen('')\n0\n"
    ">>> Strlen('abc')\n3\n\nAnswer:\n" + GO_PROMPT[:-1],
    # C++
    (FIX_TESTS, "cpp"): "Question: Fix bugs in strlen.\n"
    + CPP_DECL
    + "    return str.length() - 1;\n}\n\n"
    + CPP_TEST
    + "\n\nAnswer:\n"
    + CPP_DECL[:-1],
    (FIX_DOCS, "cpp"): "Question: Fix bugs in strlen.\n"
    + CPP_PROMPT
    + "    return str.length() - 1;\n}\n\n\nAnswer:\n"
    + CPP_PROMPT[:-1],
    (EXPLAIN_DESCRIBE, "cpp"): f"Question: {DESCRIBE_66}\n"
    + CPP_DECL
    + "    return str.length();\n}\n\n\nAnswer:",
    (EXPLAIN_SYNTHESIZE, "cpp"): "Question: Write functional code in C++ according to the "
    f"description.\n{DESCRIPTION}\n\nAnswer:\n" + CPP_DECL[:-1],
    (SYNTHESIZE, "cpp"): "Question: Write a C++ function `int strlen(string str)` to solve the "
    'following problem:\nReturn length of given string\n>>> strlen("")\n0\n>>> strlen("abc")\n'
    "3\n\nAnswer:\n" + CPP_PROMPT[:-1],
    # Rust: Fix-tests and Explain use "fn main(){}\n" + declaration as the prompt base.
    (FIX_TESTS, "rust"): "Question: Fix bugs in strlen.\nfn main(){}\n\n"
    + RS_USES
    + "\nfn strlen(strings:String) -> i32{\n\n\n    return strings.len() as i32 - 1;\n}\n\n"
    + RS_TEST
    + "\n\nAnswer:\nfn main(){}\n\n"
    + RS_USES
    + "\nfn strlen(strings:String) -> i32{",
    (FIX_DOCS, "rust"): "Question: Fix bugs in strlen.\n"
    + RS_PROMPT
    + "\n    return strings.len() as i32 - 1;\n}\n\n\nAnswer:\n"
    + RS_PROMPT[:-2],
    (EXPLAIN_DESCRIBE, "rust"): "Question: Provide a concise natural language description of "
    "the code using at most 29 characters.\nfn main(){}\n\n"
    + RS_USES
    + "\nfn strlen(strings:String) -> i32{\n\n\n    return strings.len() as i32;\n}\n\n\nAnswer:",
    (EXPLAIN_SYNTHESIZE, "rust"): "Question: Write functional code in Rust according to the "
    f"description.\n{DESCRIPTION}\n\nAnswer:\nfn main(){{}}\n\n"
    + RS_USES
    + "\nfn strlen(strings:String) -> i32{",
    (SYNTHESIZE, "rust"): "Question: Write a Rust function `strlen(strings:String) -> i32` to "
    "solve the following problem:\nReturn length of given string\n\nAnswer:\n" + RS_PROMPT[:-2],
}

# ---- the other templates, Python ------------------------------------------------------------
PY_FIX_TESTS_CONTEXT = (
    "def strlen(string: str) -> int:\n    return len(string) - 1\n\n\n\n\n\n\n"
    "def check(strlen):\n    assert strlen('') == 0\n    assert strlen('x') == 1\n"
    "    assert strlen('asdasnakj') == 9\n\ncheck(strlen)"
)
PY_PROMPT_STRIPPED = (
    'def strlen(string: str) -> int:\n    """ Return length of given string\n'
    "    >>> strlen('')\n    0\n    >>> strlen('abc')\n    3\n    \"\"\""
)
OTHER_TEMPLATES = {
    ("instruct", FIX_TESTS): PY_FIX_TESTS_CONTEXT + "\nFix bugs in strlen.\n\n"
    "def strlen(string: str) -> int:",
    ("instruct", FIX_DOCS): "def strlen(string: str) -> int:\n"
    '    """ Return length of given string\n    >>> strlen(\'\')\n    0\n'
    '    >>> strlen(\'abc\')\n    3\n    """\n    return len(string) - 1\n\nFix bugs in '
    "strlen.\n\n\n\n" + PY_PROMPT_STRIPPED,
    ("instruct", EXPLAIN_DESCRIBE): "def strlen(string: str) -> int:\n    return len(string)\n\n"
    + DESCRIBE_66,
    ("instruct", EXPLAIN_SYNTHESIZE): DESCRIPTION + "\nWrite functional code in Python according "
    "to the description.\n\ndef strlen(string: str) -> int:",
    ("instruct", SYNTHESIZE): PY_INSTRUCTION + "\n\n\n\n" + PY_PROMPT_STRIPPED,
    # octogeex strips the question: only Fix-docs (context ends in a newline) differs here.
    ("octogeex", FIX_TESTS): "Question: Fix bugs in strlen.\n"
    + PY_FIX_TESTS_CONTEXT
    + "\n\nAnswer:\ndef strlen(string: str) -> int:",
    ("octogeex", FIX_DOCS): "Question: Fix bugs in strlen.\n\n\n"
    + PY_PROMPT_STRIPPED
    + "\n    return len(string) - 1\n\nAnswer:\n\n\n"
    + PY_PROMPT_STRIPPED,
    ("octogeex", EXPLAIN_DESCRIBE): f"Question: {DESCRIBE_66}\ndef strlen(string: str) -> int:\n"
    "    return len(string)\n\nAnswer:",
    ("octogeex", EXPLAIN_SYNTHESIZE): "Question: Write functional code in Python according to "
    f"the description.\n{DESCRIPTION}\n\nAnswer:\ndef strlen(string: str) -> int:",
    ("octogeex", SYNTHESIZE): "Question: "
    + PY_INSTRUCTION
    + "\n\nAnswer:\n\n\n"
    + PY_PROMPT_STRIPPED,
    ("starchat", FIX_TESTS): "<|system|>\n<|end|>\n<|user|>\nFix bugs in strlen.\n"
    + PY_FIX_TESTS_CONTEXT
    + "<|end|>\n<|assistant|>\ndef strlen(string: str) -> int:",
    ("starchat", FIX_DOCS): "<|system|>\n<|end|>\n<|user|>\nFix bugs in strlen.\n\n\n"
    + PY_PROMPT_STRIPPED
    + "\n    return len(string) - 1\n<|end|>\n<|assistant|>\n\n\n"
    + PY_PROMPT_STRIPPED,
    ("starchat", EXPLAIN_DESCRIBE): f"<|system|>\n<|end|>\n<|user|>\n{DESCRIBE_66}\n"
    "def strlen(string: str) -> int:\n    return len(string)\n<|end|>\n<|assistant|>",
    ("starchat", EXPLAIN_SYNTHESIZE): "<|system|>\n<|end|>\n<|user|>\nWrite functional code in "
    f"Python according to the description.\n{DESCRIPTION}<|end|>\n<|assistant|>\n"
    "def strlen(string: str) -> int:",
    ("starchat", SYNTHESIZE): "<|system|>\n<|end|>\n<|user|>\n"
    + PY_INSTRUCTION
    + "<|end|>\n<|assistant|>\n\n\n"
    + PY_PROMPT_STRIPPED,
    ("continue", SYNTHESIZE): PY_PROMPT_STRIPPED,
}


def _entry(task: Task, problem: dict) -> Entry:
    return Entry(problem, DESCRIPTION, 0) if task.needs_descriptions else Entry(problem)


@pytest.mark.parametrize("language", list(FIELDS))
def test_field_literals_match_the_data(problems, language):
    problem = problems[language][23]
    prompt, decl, buggy, canon, test = FIELDS[language]
    assert problem["prompt"] == prompt
    assert problem["declaration"] == decl
    assert problem["buggy_solution"] == buggy
    assert problem["canonical_solution"] == canon
    assert problem["test"] == test


@pytest.mark.parametrize(("task_name", "language"), sorted(OCTOCODER))
def test_octocoder_prompts(problems, task_name, language):
    task = Task(task_name, language, "octocoder")
    assert task.prompt(_entry(task, problems[language][23])) == OCTOCODER[(task_name, language)]


@pytest.mark.parametrize(("template", "task_name"), sorted(OTHER_TEMPLATES))
def test_other_templates_python(problems, template, task_name):
    task = Task(task_name, "python", template)
    expected = OTHER_TEMPLATES[(template, task_name)]
    assert task.prompt(_entry(task, problems["python"][23])) == expected


def test_every_task_language_template_builds(problems):
    """Every combination either builds a stripped prompt holding its parts, or is refused."""
    for language, rows in problems.items():
        problem = rows[23]
        for task_name in TASKS:
            for template in TEMPLATES:
                if template == "continue" and task_name != SYNTHESIZE:
                    with pytest.raises(ValueError, match="continue"):
                        Task(task_name, language, template)
                    continue
                task = Task(task_name, language, template)
                prompt = task.prompt(_entry(task, problem))
                assert prompt == prompt.strip()
                if template != "continue":
                    assert task.instruction(problem).strip() in prompt
                if task_name != EXPLAIN_DESCRIBE:
                    assert task.prompt_base(problem).strip() in prompt


def test_go_template_variants_match_python_shape(problems):
    """The same template layouts hold in another language (Go, fix-docs, instruct/starchat)."""
    problem = problems["go"][23]
    assert Task(FIX_DOCS, "go", "instruct").prompt(problem) == (
        GO_PROMPT[1:] + GO_BUGGY + "\nFix bugs in Strlen.\n\n" + GO_PROMPT[:-1]
    )
    assert Task(SYNTHESIZE, "go", "starchat").prompt(problem) == (
        "<|system|>\n<|end|>\n<|user|>\nWrite a Go function `func Strlen(str string) int` to "
        "solve the following problem:\nReturn length of given string\n>>> Strlen('')\n0\n"
        ">>> Strlen('abc')\n3<|end|>\n<|assistant|>\n" + GO_PROMPT[:-1]
    )
    assert Task(SYNTHESIZE, "go", "continue").prompt(problem) == GO_PROMPT.strip()


def test_explain_synthesize_needs_a_description(problems):
    task = Task(EXPLAIN_SYNTHESIZE, "python")
    with pytest.raises(DescriptionsError):
        task.prompt(problems["python"][0])
    with pytest.raises(DescriptionsError, match="--descriptions"):
        task.entries(problems["python"][:2])


def test_explain_synthesize_rows_are_problem_major(problems):
    task = Task(EXPLAIN_SYNTHESIZE, "js")
    entries = task.entries(problems["js"][:2], [["a", "b"], ["c", "d"], ["unused"]])
    assert [(e.task_id, e.description) for e in entries] == [
        ("JavaScript/0", "a"),
        ("JavaScript/0", "b"),
        ("JavaScript/1", "c"),
        ("JavaScript/1", "d"),
    ]
    assert [e.label for e in entries][1] == "JavaScript/0@d1"


def test_build_prompt_rejects_unknown_template():
    with pytest.raises(TemplateError, match="octocoder"):
        build_prompt("alpaca", "x", None, "y")
    with pytest.raises(TemplateError, match="continue"):
        build_prompt("continue", "x", "ctx", "y")


def test_task_names_and_stop_sequences():
    assert Task("humanevalfixtests", "javascript").harness_name == "humanevalfixtests-js"
    assert Task(EXPLAIN_SYNTHESIZE, "c++").harness_name == "humanevalexplainsynthesize-cpp"
    assert Task(SYNTHESIZE, "python").stop_sequences() == [
        "\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\nassert", "<|endoftext|>",
    ]  # fmt: skip
    assert Task(SYNTHESIZE, "go", "starchat", eos_token="</s>").stop_sequences() == [
        "\n//", "\nfunc main(", "struct", "\nfunc", "<|end|>", "<|endoftext|>", "</s>",
    ]  # fmt: skip
    assert Task(FIX_TESTS, "rust").stop_sequences() == ["<|endoftext|>"]
    with pytest.raises(ValueError, match="unknown task"):
        Task("humanevalfix", "python")
    with pytest.raises(ValueError, match="unknown language"):
        Task(SYNTHESIZE, "kotlin")
