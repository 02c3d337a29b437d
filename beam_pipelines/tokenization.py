"""Token counting for CommitPackFT's length rule, with a Hugging Face tokenizer from local disk.

In production this is StarCoder's tokenizer (a directory holding ``tokenizer.json``, e.g. a local
copy of ``bigcode/starcoder``); tests train a tiny byte-level BPE with the same special tokens.
Nothing is downloaded: a missing path raises :class:`TokenizerNotFoundError` with what to provide.
"""

from __future__ import annotations

import json
import os
import re
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


def _byte_level(pre_tokenizer: dict | None) -> bool:
    """Whether ``pre_tokenizer`` (tokenizer.json) is GPT-2's byte-level split, optionally after
    single-digit splitting (StarCoder's): the two for which cutting a text before a newline that
    follows a non-space character never changes the tokens (see :func:`split_points`)."""
    if not pre_tokenizer:
        return False
    if pre_tokenizer.get("type") == "Sequence":
        items = pre_tokenizer.get("pretokenizers", [])
        digits = [p for p in items if p.get("type") == "Digits"]
        rest = [p for p in items if p.get("type") != "Digits"]
        return len(rest) == 1 and items[-1] is rest[0] and _byte_level(rest[0]) and bool(digits)
    return (
        pre_tokenizer.get("type") == "ByteLevel"
        and pre_tokenizer.get("use_regex", True)
        and not pre_tokenizer.get("add_prefix_space", False)
    )


def split_points(text: str, chunk_chars: int) -> list[int]:
    """Offsets at which ``text`` can be cut without changing its byte-level BPE tokens: each is a
    newline whose preceding character is not white space (no pre-token spans such a newline, and
    the GPT-2 split regex looks only ahead), about ``chunk_chars`` apart."""
    points = []
    pos = chunk_chars
    while pos < len(text):
        cut = text.find("\n", pos)
        while cut != -1 and text[cut - 1].isspace():
            cut = text.find("\n", cut + 1)
        if cut == -1:
            break
        points.append(cut)
        pos = cut + chunk_chars
    return points


# In ASCII text: runs of letters, of digits, of other non-space characters, and white-space
# runs except a lone space (which the next word takes as its leading space).
_ASCII_RUN_RE = re.compile(
    r"[A-Za-z]+|[0-9]+|[^A-Za-z0-9\t\n\v\f\r ]+|[\t\n\v\f\r ]{2,}|[\t\n\v\f\r]"
)


def pretoken_lower_bound(text: str, limit: int) -> int:
    """A lower bound on the GPT-2 byte-level pre-tokens (so tokens) of ASCII ``text``, looking at
    no more than its first ``6 * (limit + 1)`` characters (enough for code, and cheap).

    No pre-token holds two runs of letters, digits or other non-space characters, and a
    white-space run is a pre-token of its own unless it is one space before a word. Each run
    counted is therefore at least one distinct pre-token, also when it is cut by the prefix;
    single-digit splitting and contractions only add pre-tokens.
    """
    return len(_ASCII_RUN_RE.findall(text, 0, 6 * (limit + 1)))


class TokenCounter:
    """Counts tokens of ``old + "<|endoftext|>" + new`` exactly as CommitPackFT does, stopping
    early once a limit is passed.

    For a byte-level BPE (StarCoder's, and the ones tests train) these shortcuts keep the count
    exact below the limit: the special token splits the text, so the count is ``count(old) + 1 +
    count(new)``; every token holds at most ``max_token_bytes`` bytes, so a side of ``b`` bytes
    has at least ``ceil(b / max_token_bytes)`` tokens; an ASCII side has at least
    :func:`pretoken_lower_bound` tokens (both bounds decide "too many" without tokenising); and
    a side is tokenised in pieces cut at :func:`split_points`, stopping once the limit is passed.
    Any other tokenizer is counted on the whole text.
    """

    CHUNK_CHARS = 2048

    def __init__(self, path: str):
        self.path = path
        tokenizer_file = resolve_tokenizer_file(path)
        try:
            self.tokenizer = Tokenizer.from_file(tokenizer_file)
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"{tokenizer_file}: not a Hugging Face tokenizer: {err}") from err
        if self.tokenizer.token_to_id(EOS_TOKEN) is None:
            raise ValueError(f"{tokenizer_file}: tokenizer has no {EOS_TOKEN} token")
        self._fast = getattr(self.tokenizer, "encode_batch_fast", None)
        config = json.loads(self.tokenizer.to_str())
        added = config.get("added_tokens") or []
        self.chunkable = (
            config.get("normalizer") is None
            and _byte_level(config.get("pre_tokenizer"))
            and (config.get("model") or {}).get("type") == "BPE"
            and not (config.get("model") or {}).get("dropout")
            and any(a["content"] == EOS_TOKEN for a in added)
            and not any("\n" in a["content"] or a.get("lstrip") or a.get("rstrip") for a in added)
        )
        self.added_contents = tuple(a["content"] for a in added)
        vocab = self.tokenizer.get_vocab(with_added_tokens=False)
        self.max_token_bytes = max(
            [len(t) for t in vocab] + [len(a["content"].encode("utf-8")) for a in added]
        )

    def count(self, text: str) -> int:
        """Number of tokens of ``text`` (no special tokens added)."""
        if self._fast is not None:  # no offsets computed: about 40% faster
            return len(self._fast([text], add_special_tokens=False)[0].ids)
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_upto(self, text: str, limit: int) -> int:
        """Tokens of ``text``: exact when at most ``limit``, otherwise some number above it."""
        if not self.chunkable:
            return self.count(text)
        if -(-len(text.encode("utf-8")) // self.max_token_bytes) > limit:
            return limit + 1
        if text.isascii() and not any(a in text for a in self.added_contents):
            bound = pretoken_lower_bound(text, limit)
            if bound > limit:
                return bound
        total = start = 0
        for cut in [*split_points(text, self.CHUNK_CHARS), len(text)]:
            total += self.count(text[start:cut])
            if total > limit:
                return total
            start = cut
        return total

    def count_pair(self, old_contents: str, new_contents: str, limit: int | None = None) -> int:
        """Tokens of ``old + "<|endoftext|>" + new``: exact when at most ``limit`` (or when
        ``limit`` is None), otherwise some number above ``limit``."""
        if limit is None or not self.chunkable:
            return self.count(old_contents + EOS_TOKEN + new_contents)
        old = self.count_upto(old_contents, limit - 1)
        if old + 1 > limit:
            return old + 1
        return old + 1 + self.count_upto(new_contents, limit - old - 1)
