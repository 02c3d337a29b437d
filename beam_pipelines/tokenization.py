"""Token counting for CommitPackFT's length rule, with a Hugging Face tokenizer from local disk.

In production this is StarCoder's tokenizer (a directory holding ``tokenizer.json``, e.g. a local
copy of ``bigcode/starcoder``); tests train a tiny byte-level BPE with the same special tokens.
Nothing is downloaded: a missing path raises :class:`TokenizerNotFoundError` with what to provide.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from tokenizers import Tokenizer

EOS_TOKEN = "<|endoftext|>"


class TokenizerNotFoundError(FileNotFoundError):
    """No ``tokenizer.json`` at the given path."""


def resolve_tokenizer_file(path: str) -> str:
    """The ``tokenizer.json`` for ``path`` (a file or a directory holding one).

    Remote paths (``gs://...``) are copied to a local temp file with Beam's FileSystems, so
    Dataflow workers can read a tokenizer staged in a bucket.
    """
    if "://" in path:
        from apache_beam.io.filesystems import FileSystems  # only on workers with remote paths

        remote = path if path.endswith(".json") else path.rstrip("/") + "/tokenizer.json"
        if not FileSystems.exists(remote):
            raise TokenizerNotFoundError(f"tokenizer not found: {remote}")
        fd, local = tempfile.mkstemp(suffix="-tokenizer.json")
        with os.fdopen(fd, "wb") as out, FileSystems.open(remote) as src:
            shutil.copyfileobj(src, out)
        return local
    candidate = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise TokenizerNotFoundError(
            f"tokenizer not found: {candidate} (give --tokenizer a directory with tokenizer.json, "
            "e.g. a local copy of bigcode/starcoder, or the tokenizer.json file itself)"
        )
    return candidate


def check_tokenizer(path: str) -> None:
    """Fail early (before a pipeline starts) if ``path`` has no loadable tokenizer."""
    TokenCounter(path)


class TokenCounter:
    """Counts tokens of ``old + "<|endoftext|>" + new`` exactly as CommitPackFT does."""

    def __init__(self, path: str):
        self.path = path
        tokenizer_file = resolve_tokenizer_file(path)
        try:
            self.tokenizer = Tokenizer.from_file(tokenizer_file)
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"{tokenizer_file}: not a Hugging Face tokenizer: {err}") from err
        if self.tokenizer.token_to_id(EOS_TOKEN) is None:
            raise ValueError(f"{tokenizer_file}: tokenizer has no {EOS_TOKEN} token")

    def count(self, text: str) -> int:
        """Number of tokens of ``text`` (no special tokens added)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_pair(self, old_contents: str, new_contents: str) -> int:
        return self.count(old_contents + EOS_TOKEN + new_contents)
