"""Fixtures for the beam_pipelines tests: real git repositories and a tiny trained tokenizer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from octojax.tokenizer import STARCODER_SPECIAL_TOKENS

STARCODER_SPECIALS = list(STARCODER_SPECIAL_TOKENS)

MIT_TEXT = """MIT License

Copyright (c) 2024 Test Author

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software.
"""

GPL3_TEXT = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.
"""

APACHE_TEXT = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""


class GitRepo:
    """A real repository in a temp dir, with deterministic commit dates."""

    def __init__(self, path: Path):
        self.path = path
        self.tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@example.com")
        self.git("config", "user.name", "Dev")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        self.tick += 1
        env = {
            **os.environ,
            "GIT_AUTHOR_DATE": f"2020-01-01T00:{self.tick // 60:02d}:{self.tick % 60:02d}Z",
            "GIT_COMMITTER_DATE": f"2020-01-01T00:{self.tick // 60:02d}:{self.tick % 60:02d}Z",
        }
        out = subprocess.run(
            ["git", "-C", str(self.path), *args],
            env=env,
            check=True,
            capture_output=True,
        )
        return out.stdout.decode()

    def write(self, rel: str, content: str | bytes) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")

    def commit(
        self, message: str, files: dict[str, str | bytes] | None = None, raw: bool = False
    ) -> str:
        """Commit ``files``; with ``raw`` the message is stored exactly (no final newline)."""
        for rel, content in (files or {}).items():
            self.write(rel, content)
        self.git("add", "-A")
        if raw:  # -F with --cleanup=verbatim: git adds no newline (-m always adds one)
            msg_file = self.path.parent / f".{self.path.name}-message"
            msg_file.write_bytes(message.encode("utf-8"))
            self.git("commit", "-q", "--allow-empty", "--cleanup=verbatim", "-F", str(msg_file))
        else:
            self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> str:
    """A byte-level BPE with StarCoder's special tokens (``<|endoftext|>`` is id 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=STARCODER_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [
        "def add(a, b):\n    return a + b\n",
        "function parse(value) { return JSON.parse(value); }\n",
        "for i in range(10):\n    print(i)\n",
        "class Config:\n    def __init__(self, values):\n        self.values = values\n",
    ] * 20
    tok.train_from_iterator(corpus, trainer)
    assert tok.token_to_id("<|endoftext|>") == 0
    out = tmp_path_factory.mktemp("tokenizer")
    tok.save(str(out / "tokenizer.json"))
    return str(out)


@pytest.fixture
def git_repo(tmp_path):
    """Factory: ``git_repo("name")`` -> a fresh :class:`GitRepo`."""

    def make(name: str) -> GitRepo:
        return GitRepo(tmp_path / name)

    return make


UTIL_V1 = """def parse(value):
    return value.strip()


def add(a, b):
    return a + b
"""
UTIL_V2 = """def parse(value, default=None):
    if value is None:
        return default
    return value.strip()


def add(a, b):
    return a + b
"""
UTIL_V3 = (
    UTIL_V2
    + """

def total(values):
    return sum(values)
"""
)
APP_V1 = "function parse(value) { return JSON.parse(value); }\n"
APP_V2 = "function parse(value) { return value ? JSON.parse(value) : null; }\n"


@pytest.fixture
def alpha_repo(git_repo):
    """An MIT repository whose history covers every structural case.

    Returns (GitRepo, expected) where expected maps commit sha -> outcome: ``"ft"`` (kept in
    CommitPack and CommitPackFT), ``"cp"`` (kept in CommitPack, dropped in FT: ``"cp:<ft reason>"``),
    a CommitPack drop reason, or ``"dead:<reason>"``.
    """
    repo = git_repo("alpha")
    exp: dict[str, str] = {}
    exp[repo.commit("Initial import", {"LICENSE": MIT_TEXT, "README.md": "# alpha\n"})] = (
        "no_in_place_change"
    )
    exp[repo.commit("Create the helpers module", {"src/util.py": UTIL_V1})] = "file_added"
    exp[
        repo.commit(
            "Handle missing values when parsing input\n\nReturn the default instead of failing.\n",
            {"src/util.py": UTIL_V2},
        )
    ] = "ft"
    exp[repo.commit("Add the web client", {"web/app.js": APP_V1})] = "file_added"
    exp[repo.commit("Touch two files at once", {"web/app.js": APP_V2, "src/util.py": UTIL_V3})] = (
        "multi_file"
    )
    exp[repo.commit("fix the parser for empty strings", {"web/app.js": APP_V1})] = (
        "cp:not_capitalised"
    )
    repo.git("mv", "src/util.py", "src/helpers.py")
    exp[repo.commit("Move helpers to a better place")] = "no_in_place_change"  # delete + add
    exp[repo.commit("Add notes", {"docs/notes.txt": "notes\n"})] = "file_added"
    (repo.path / "docs/notes.txt").unlink()
    exp[repo.commit("Remove the obsolete notes")] = "file_deleted"
    exp[repo.commit("Add a data blob", {"data.bin": b"\x00\x01\x02binary"})] = "file_added"
    exp[repo.commit("Change the data blob", {"data.bin": b"\x00\x03\x04binary"})] = "dead:binary"
    exp[repo.commit("Add latin-1 module", {"legacy.py": "x = 'caf\xe9'\n".encode("latin-1")})] = (
        "file_added"
    )
    exp[repo.commit("Edit latin-1 module", {"legacy.py": "x = 'th\xe9'\n".encode("latin-1")})] = (
        "dead:invalid_utf8"
    )
    exp[repo.commit("Add a large table", {"table.py": "X = 1\n" * 5000})] = "file_added"
    exp[repo.commit("Grow the large table", {"table.py": "X = 2\n" * 5000})] = "dead:oversize"
    # git keeps the final newline: "update\n" is not the boring message "update" (compared whole)
    exp[repo.commit("update", {"web/app.js": APP_V2})] = "cp:subject_length"
    exp[repo.commit("Initial commit", {"web/app.js": APP_V2 + "// v2\n"}, raw=True)] = (
        "boring_message"
    )
    exp[repo.commit("Merge the old parser back", {"web/app.js": APP_V1})] = "merge_message"
    exp[repo.commit("Add a config file", {"conf.unknownext": "a=1\n"})] = "file_added"
    exp[repo.commit("Change the config value", {"conf.unknownext": "a=2\n"})] = "unknown_language"
    exp[repo.commit("Update src/helpers.py", {"src/helpers.py": UTIL_V1}, raw=True)] = (
        "update_filename_message"
    )
    exp[repo.commit("lalala", {"src/helpers.py": UTIL_V2}, raw=True)] = "nonsense_message"
    exp[
        repo.commit(
            "Add a module and change the helpers",
            {"src/helpers.py": UTIL_V3, "src/new.py": "X = 1\n"},
        )
    ] = "cp:file_name_in_subject"
    exp[repo.commit("ok", {"src/helpers.py": UTIL_V1})] = "message_length"
    os.symlink("src/helpers.py", repo.path / "link.py")
    exp[repo.commit("Add a link to the helpers")] = "file_added"
    (repo.path / "link.py").unlink()
    os.symlink("web/app.js", repo.path / "link.py")
    exp[repo.commit("Point the link at the client")] = "not_regular_file"
    exp[repo.commit("Record an empty commit")] = "no_file_changed"
    # a branch with one good commit, merged back with --no-ff
    repo.git("checkout", "-q", "-b", "feature")
    exp[repo.commit("Bump the default retry count to five", {"src/helpers.py": UTIL_V3})] = "cp"
    repo.git("checkout", "-q", "main")
    exp[repo.commit("Refactor the client parser slightly", {"web/app.js": APP_V2})] = (
        "cp:too_few_tokens"
    )
    repo.git("merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature")
    exp[repo.head()] = "merge_commit"
    return repo, exp


@pytest.fixture(scope="session")
def license_texts() -> dict[str, str]:
    return {"mit": MIT_TEXT, "gpl3": GPL3_TEXT, "apache": APACHE_TEXT}
