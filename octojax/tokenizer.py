"""Tokenizers: load a local Hugging Face tokenizer, or train a tiny StarCoder-style one offline.

The one tokenizer module of octojax (data, train, generate, the pipeline and Beam tests use it);
it imports no jax, so data workers and Beam workers can load it cheaply.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

# StarCoder's special tokens, in id order (<|endoftext|> is id 0).
STARCODER_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<empty_output>",
    "<commit_before>",
    "<commit_msg>",
    "<commit_after>",
    "<reponame>",
)
EOS_TOKEN = "<|endoftext|>"
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


def load_tokenizer(path: str | Path):
    """A transformers fast tokenizer from a local directory or a tokenizer.json file (no hub access)."""
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    if path.is_file():
        if path.suffix != ".json":
            raise ValueError(f"{path}: expected a tokenizer.json file or a tokenizer directory")
        tok = PreTrainedTokenizerFast(tokenizer_file=str(path))
    elif path.is_dir():
        if not any((path / f).exists() for f in _TOKENIZER_FILES):
            raise FileNotFoundError(
                f"{path}: no tokenizer.json / tokenizer_config.json / vocab.json"
            )
        tok = _load_directory(path)
    else:
        raise FileNotFoundError(f"{path}: tokenizer file or directory does not exist")
    if tok.eos_token is None and EOS_TOKEN in tok.get_vocab():
        tok.eos_token = EOS_TOKEN
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def _load_directory(path: Path):
    """A directory with tokenizer.json loads as the generic fast tokenizer: the same tokenization
    as its AutoTokenizer class (tokenizer.json holds the whole pipeline) without AutoTokenizer's
    import of torch, ~2.5 s of every process start. Only a directory without tokenizer.json
    (vocab.json + merges.txt) needs AutoTokenizer to build one."""
    from transformers import PreTrainedTokenizerFast

    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def train_bpe_tokenizer(
    texts: Iterable[str], out_dir: str | Path, vocab_size: int = 512, min_frequency: int = 2
) -> Path:
    """Train a byte-level BPE tokenizer with StarCoder's special tokens (ids 0..18); save to out_dir.

    For offline tests and smoke runs: the real StarCoder tokenizer cannot be downloaded here.
    The directory loads with `load_tokenizer` and with transformers' AutoTokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(STARCODER_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        additional_special_tokens=list(STARCODER_SPECIAL_TOKENS[1:]),
        model_max_length=8192,
    )
    fast.save_pretrained(str(out_dir))
    return out_dir


def copy_tokenizer_files(
    src: str | Path, dst: str | Path, *, model_max_length: int | None = None
) -> None:
    """Copy the tokenizer files of a directory (or a lone tokenizer.json) into dst.

    model_max_length: the model's position count, written into tokenizer_config.json so that
    transformers' tokenizer never claims more context than the exported model has.
    """
    src, dst = Path(src), Path(dst)
    if src.is_file():
        shutil.copy2(src, dst / "tokenizer.json")
    else:
        copied = [f for f in _TOKENIZER_FILES if (src / f).exists()]
        if not copied:
            raise FileNotFoundError(f"{src}: no tokenizer files to copy")
        for f in copied:
            shutil.copy2(src / f, dst / f)
    if model_max_length is not None:
        _set_model_max_length(dst / "tokenizer_config.json", model_max_length)


def _set_model_max_length(config_path: Path, n: int) -> None:
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config["model_max_length"] = n
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def vocab_size_of(path: str | Path) -> int:
    """Number of ids in a tokenizer (for sizing a model's embedding table)."""
    path = Path(path)
    tj = path if path.is_file() else path / "tokenizer.json"
    if tj.exists():
        data = json.loads(tj.read_text())
        n = len(data["model"]["vocab"])
        added = [t["id"] for t in data.get("added_tokens", [])]
        return max([n - 1, *added]) + 1
    return len(load_tokenizer(path))


def octojax_source_corpus() -> list[str]:
    """Real code to train a tiny tokenizer on, offline: octojax's own source files."""
    root = Path(__file__).parent
    return [p.read_text() for p in sorted(root.rglob("*.py"))]
