"""The English start list of CommitPackFT: a subject is kept only if it starts with one of these.

Data carried over from the OctoPack reference, ``dataset/commitpackft/commitpackft_filters1.py``
(``GOOD_STARTS_EN``: 257 distinct entries, some of them several words such as "speed up"). The
reference appends a space to every entry and tests ``subject.lower().startswith(...)``, so "Fix
a bug" qualifies and "Fixes a bug" or a lone "Fix" do not. The entry "plug " already ends with a
space in the reference; with the appended one it needs two spaces after "plug", and is kept so.
"""

from __future__ import annotations

# fmt: off
GOOD_STARTS_EN: frozenset[str] = frozenset({
    "abort", "accelerate", "access", "accumulate", "add", "address", "adjust", "advance", "align",
    "allot", "allow", "amplify", "annotate", "append", "apply", "archive", "arrange", "attach",
    "augment", "automate", "backup", "boost", "break", "bring", "brush up", "build", "bump",
    "call", "change", "check", "choose", "clarify", "clean", "clear", "clone", "comment",
    "complete", "compress", "concatenate", "configure", "connect", "consolidate", "convert",
    "copy", "correct", "cover", "create", "customize", "cut", "deal with", "debug", "decipher",
    "declare", "decommission", "decomplexify", "decompress", "decrease", "decrypt", "define",
    "delete", "deploy", "designate", "destroy", "detach", "determine", "develop", "diminish",
    "disable", "discard", "disentangle", "dismantle", "divide", "document", "downgrade", "drop",
    "duplicate", "edit", "embed", "emphasize", "enable", "encrypt", "enforce", "enhance",
    "enlarge", "enumerate", "eradicate", "escalate", "establish", "exclude", "exit", "expand",
    "expedite", "expire", "extend", "facilitate", "fix", "format", "gather", "generalize", "halt",
    "handle", "hasten", "hide", "implement", "improve", "include", "increase", "increment",
    "indent", "index", "inflate", "initialize", "insert", "install", "integrate", "interpolate",
    "interrupt", "introduce", "isolate", "join", "kill", "leverage", "load", "magnify", "maintain",
    "make", "manage", "mark", "mask", "mend", "merge", "migrate", "modify", "monitor", "move",
    "multiply", "normalize", "optimize", "orchestrate", "order", "package", "paraphrase", "paste",
    "patch", "plug ", "prepare", "prepend", "print", "provision", "purge", "put", "quit", "raise",
    "read", "reannotate", "rearrange", "rebase", "reboot", "rebuild", "recomment", "recompile",
    "reconfigure", "reconnect", "rectify", "redact", "redefine", "reduce", "refactor", "reformat",
    "refresh", "reimplement", "reinforce", "relocate", "remove", "rename", "reorder", "reorganize",
    "repackage", "repair", "rephrase", "replace", "reposition", "reschedule", "reset", "reshape",
    "resolve", "restructure", "return", "revert", "revise", "revoke", "reword", "rework",
    "rewrite", "rollback", "save", "scale", "scrub", "secure", "select", "send", "set", "settle",
    "simplify", "solve", "sort", "speed up", "split", "stabilize", "standardize", "stipulate",
    "stop", "store", "streamline", "strengthen", "structure", "substitute", "subtract", "support",
    "swap", "switch", "synchronize", "tackle", "tag", "terminate", "test", "throw", "tidy",
    "transform", "transpose", "trim", "troubleshoot", "truncate", "tweak", "unblock", "uncover",
    "undo", "unify", "uninstall", "unplug", "unpublish", "unravel", "unstage", "unsync",
    "untangle", "unwind", "update", "upgrade", "use", "validate", "verify", "watch", "watermark",
    "whitelist", "withdraw", "work", "write",
})
# fmt: on

GOOD_START_PREFIXES: tuple[str, ...] = tuple(sorted(word + " " for word in GOOD_STARTS_EN))
"""What ``subject.lower()`` must start with (each entry followed by one space)."""
