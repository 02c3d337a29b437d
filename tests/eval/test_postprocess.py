"""Post-processing per language on hand-made generations (expected outputs worked out by hand)."""

from __future__ import annotations

import pytest

from eval.postprocess import is_complete, keep_first_function
from eval.tasks import (
    EXPLAIN_DESCRIBE,
    EXPLAIN_SYNTHESIZE,
    FIX_DOCS,
    FIX_TESTS,
    SYNTHESIZE,
    Entry,
    Task,
)


def test_python_stops_at_stop_sequence(problems):
    p = problems["python"][23]
    out = Task(SYNTHESIZE, "python").postprocess(
        p, "\n    return len(string)\n\n\ndef other():\n    pass\n"
    )
    assert out == (
        '\n\ndef strlen(string: str) -> int:\n    """ Return length of given string\n'
        "    >>> strlen('')\n    0\n    >>> strlen('abc')\n    3\n    \"\"\"\n"
        "    return len(string)\n\n"
    )


def test_python_stops_at_first_unindented_line(problems):
    p = problems["python"][23]
    out = Task(FIX_TESTS, "python").postprocess(
        p, "\n    return len(string)\nx = strlen('a')\n    more\n"
    )
    assert out == "def strlen(string: str) -> int:\n    return len(string)"


def test_python_end_of_text_and_custom_eos(problems):
    p = problems["python"][23]
    task = Task(FIX_TESTS, "python")
    assert task.postprocess(p, "\n    return len(string)\n<|endoftext|>junk") == (
        "def strlen(string: str) -> int:\n    return len(string)\n"
    )
    task = Task(FIX_TESTS, "python", eos_token="</s>")
    assert task.postprocess(p, "\n\treturn len(string)</s>\nprint(1)") == (
        "def strlen(string: str) -> int:\n\treturn len(string)"
    )


def test_python_fix_docs_keeps_the_docstring_prefix(problems):
    p = problems["python"][23]
    out = Task(FIX_DOCS, "python").postprocess(p, "\n    return len(string)")
    assert out.startswith('\n\ndef strlen(string: str) -> int:\n    """ Return length')
    assert out.endswith('    3\n    """\n    return len(string)')


def test_js_cuts_after_closing_brace(problems):
    p = problems["js"][23]
    out = Task(SYNTHESIZE, "js").postprocess(
        p,
        "\n  if (!string) { return 0; }\n  return string.length;\n}\n\nconsole.log(strlen('a'));\n",
    )
    assert out == (
        "/* Return length of given string\n  >>> strlen('')\n  0\n  >>> strlen('abc')\n  3\n"
        "  */\nconst strlen = (string) => {\n  if (!string) { return 0; }\n"
        "  return string.length;\n}"
    )


def test_java_counts_the_class_brace(problems):
    p = problems["java"][23]
    out = Task(FIX_TESTS, "java").postprocess(
        p,
        "\n        return string.length();\n    }\n}\n\npublic class Main {\n"
        "    public static void main(String[] a) {}\n}\n",
    )
    assert out == (
        "import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n"
        "    public int strlen(String string) {\n        return string.length();\n    }\n}"
    )


def test_java_unclosed_drops_main_and_trailing_text():
    code = (
        "\n        return string.length();\n    }\n\n    public static void main(String[] args) {\n"
        "        System.out.println(1);\n"
    )
    assert keep_first_function("java", code) == "\n        return string.length();\n    }\n\n    }"


def test_java_unclosed_closes_a_missing_brace():
    code = "\n        while (true) {\n            if (x) {\n                break;\n            }\n    // t"
    assert keep_first_function("java", code) == (
        "\n        while (true) {\n            if (x) {\n                break;\n            }\n}"
    )


def test_go_stop_sequences(problems):
    p = problems["go"][23]
    task = Task(SYNTHESIZE, "go")
    prefix = "\n// Return length of given string\n// >>> Strlen('')\n// 0\n// >>> Strlen('abc')\n// 3\nfunc Strlen(str string) int {"
    assert task.postprocess(p, "\n    return len(str)\n}\n\nfunc main() {\n}") == (
        prefix + "\n    return len(str)\n}"
    )
    assert (
        task.postprocess(p, "\n    return len(str)\n// done\n}") == prefix + "\n    return len(str)"
    )
    # "struct" stops anywhere, even mid-line; nothing closed is left as is.
    assert (
        task.postprocess(p, "\n    s := struct{}{}\n    return len(str)\n}")
        == prefix + "\n    s := "
    )


def test_cpp_drops_main(problems):
    p = problems["cpp"][23]
    out = Task(FIX_TESTS, "cpp").postprocess(
        p, "\n    return str.length();\n}\nint main(){\n    return 0;\n}\n"
    )
    assert out == (
        "#include<stdio.h>\n#include<math.h>\n#include<string>\nusing namespace std;\n"
        "#include<algorithm>\n#include<stdlib.h>\nint strlen(string str){\n"
        "    return str.length();\n}"
    )


def test_rust_prefix_and_unclosed_body(problems):
    p = problems["rust"][23]
    fix = Task(FIX_TESTS, "rust").postprocess(
        p, "\n    return strings.len() as i32;\n}\n\nfn main() {}\n"
    )
    assert fix.startswith("fn main(){}\n\nuse std::{slice::Iter")
    assert fix.endswith("fn strlen(strings:String) -> i32{\n    return strings.len() as i32;\n}")
    synth = Task(SYNTHESIZE, "rust").postprocess(
        p, "\n    let n = strings.len();\n    if n > 0 { return n as i32; }\n    0"
    )
    assert synth.endswith(
        "*/\nfn strlen(strings:String) -> i32{\n    let n = strings.len();\n"
        "    if n > 0 { return n as i32; }"
    )


def test_explain_synthesize_uses_the_full_prompt_as_prefix(problems):
    """The harness prepends the record's `prompt` (with docstring), not the declaration."""
    p = problems["python"][23]
    entry = Entry(p, "Count the characters.", 0)
    out = Task(EXPLAIN_SYNTHESIZE, "python").postprocess(entry, "\n    return len(string)\n")
    assert out.startswith('\n\ndef strlen(string: str) -> int:\n    """ Return length')
    assert out.endswith('"""\n    return len(string)')


def test_description_truncated_to_docstring_length(problems):
    p = problems["rust"][23]  # docstring "Return length of given string": 29 characters
    out = Task(EXPLAIN_DESCRIBE, "rust").postprocess(
        p, "   The function strlen returns the number of characters in a string"
    )
    assert out == "The function strlen returns t"


def test_description_stop_sequence_and_copied_code(problems):
    p = problems["python"][0]
    task = Task(EXPLAIN_DESCRIBE, "python")
    out = task.postprocess(p, " Checks pairs.\nfor idx, elem in enumerate(numbers):\nok  \n")
    assert out == "Checks pairs.\n\nok"
    assert task.postprocess(p, "Compares all pairs.\n# Example\nfoo") == "Compares all pairs."


def test_raw_full_text_postprocessing_matches(problems):
    p = problems["cpp"][23]
    task = Task(FIX_DOCS, "cpp", "starchat")
    completion = "\n    return str.length();\n}<|end|>\n"
    assert task.postprocess_full_text(p, task.prompt(p) + completion) == task.postprocess(
        p, completion
    )


@pytest.mark.parametrize(
    ("language", "text", "done"),
    [
        ("python", "\n    return 1\n", False),
        ("python", "\n    return 1\nprint", True),
        ("python", "\n    return 1\nx", True),
        ("js", "\n  return 1;\n", False),
        ("js", "\n  return 1;\n}", True),
        ("java", "\n  return 1;\n  }", False),
        ("java", "\n  return 1;\n  }\n}", True),
        ("go", "\n  return 1\n// x", True),
    ],
)
def test_is_complete(language, text, done):
    stops = Task(SYNTHESIZE, language).stop_sequences()
    assert is_complete(language, text, stops) is done
