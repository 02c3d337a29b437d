"""Hugging Face GPTBigCode checkpoints <-> octojax parameters.

Import streams the checkpoint one tensor at a time into preallocated octojax buffers, so host memory
holds one copy of the model plus one tensor; each finished buffer can go straight onto a mesh.
Export writes config.json + safetensors with the fused `c_attn` restored (sharded like
transformers' save_pretrained above max_shard_size), loadable by
`transformers.GPTBigCodeForCausalLM.from_pretrained`; it pulls one tensor at a time from the
devices and moves the folder into place only when complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
from tqdm import tqdm

from octojax.convert.safetensors_io import INDEX_FILE, iter_tensors, write_sharded
from octojax.convert.staging import staged_dir
from octojax.model.config import ModelConfig
from octojax.model.gptbigcode import GPTBigCode, model_from_params, param_shapes

_LAYER = re.compile(r"^(?:transformer\.)?h\.(\d+)\.(.+)$")
_IGNORED = re.compile(r"(\.attn\.(masked_)?bias$)|(^lm_head\.weight$)")


class CheckpointError(ValueError):
    """A Hugging Face checkpoint that does not match the expected GPTBigCode layout."""


# ---- per-tensor layout maps (HF Linear weights are [out, in]) ----------------------------------


def _split_c_attn(cfg: ModelConfig, w: np.ndarray, b: np.ndarray):
    """HF fused c_attn -> (q_kernel [D,N,H], q_bias [N,H], kv_kernel [D,2,K,H], kv_bias [2,K,H])."""
    D, N, H = cfg.n_embd, cfg.n_head, cfg.head_dim
    if cfg.multi_query:  # rows: Q [0, D), K [D, D+H), V [D+H, D+2H)
        q = w[:D].T.reshape(D, N, H)
        qb = b[:D].reshape(N, H)
        kv = np.stack([w[D : D + H].T, w[D + H :].T], axis=1)[:, :, None, :]
        kvb = np.stack([b[D : D + H], b[D + H :]], axis=0)[:, None, :]
    else:  # rows per head: (q, k, v) interleaved, [N, 3, H]
        w4 = w.reshape(N, 3, H, D)
        q = w4[:, 0].transpose(2, 0, 1)
        kv = w4[:, 1:].transpose(3, 1, 0, 2)
        b3 = b.reshape(N, 3, H)
        qb = b3[:, 0]
        kvb = b3[:, 1:].transpose(1, 0, 2)
    return q, qb, kv, kvb


def _fuse_c_attn(cfg: ModelConfig, q, qb, kv, kvb):
    """Inverse of _split_c_attn."""
    D = cfg.n_embd
    if cfg.multi_query:
        w = np.concatenate([q.reshape(D, D).T, kv[:, 0, 0].T, kv[:, 1, 0].T], axis=0)
        b = np.concatenate([qb.reshape(D), kvb[0, 0], kvb[1, 0]])
    else:
        w4 = np.concatenate([q.transpose(1, 2, 0)[:, None], kv.transpose(2, 1, 3, 0)], axis=1)
        w = w4.reshape(3 * D, D)
        b = np.concatenate([qb[:, None], kvb.transpose(1, 0, 2)], axis=1).reshape(3 * D)
    return w, b


# Simple per-layer tensors: HF suffix -> (octojax name, to_octojax, from_octojax).
def _simple_layer_map(cfg: ModelConfig) -> dict[str, tuple[str, Callable, Callable]]:
    N, H, D = cfg.n_head, cfg.head_dim, cfg.n_embd
    ident = lambda a: a
    return {
        "ln_1.weight": ("ln_1_scale", ident, ident),
        "ln_1.bias": ("ln_1_bias", ident, ident),
        "ln_2.weight": ("ln_2_scale", ident, ident),
        "ln_2.bias": ("ln_2_bias", ident, ident),
        "attn.c_proj.weight": (
            "o_kernel",
            lambda w: w.T.reshape(N, H, D),
            lambda o: o.reshape(D, D).T,
        ),
        "attn.c_proj.bias": ("o_bias", ident, ident),
        "mlp.c_fc.weight": ("fc_kernel", lambda w: w.T, lambda k: k.T),
        "mlp.c_fc.bias": ("fc_bias", ident, ident),
        "mlp.c_proj.weight": ("proj_kernel", lambda w: w.T, lambda k: k.T),
        "mlp.c_proj.bias": ("proj_bias", ident, ident),
    }


_TOP = {
    "wte.weight": "wte",
    "wpe.weight": "wpe",
    "ln_f.weight": "ln_f_scale",
    "ln_f.bias": "ln_f_bias",
}


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor of a GPTBigCode checkpoint, by HF name."""
    D, M, V, P = cfg.n_embd, cfg.mlp_dim, cfg.vocab_size, cfg.n_positions
    qkv = D + 2 * cfg.kv_heads * cfg.head_dim
    shapes = {
        "transformer.wte.weight": (V, D),
        "transformer.wpe.weight": (P, D),
        "transformer.ln_f.weight": (D,),
        "transformer.ln_f.bias": (D,),
    }
    per_layer = {
        "ln_1.weight": (D,),
        "ln_1.bias": (D,),
        "attn.c_attn.weight": (qkv, D),
        "attn.c_attn.bias": (qkv,),
        "attn.c_proj.weight": (D, D),
        "attn.c_proj.bias": (D,),
        "ln_2.weight": (D,),
        "ln_2.bias": (D,),
        "mlp.c_fc.weight": (M, D),
        "mlp.c_fc.bias": (M,),
        "mlp.c_proj.weight": (D, M),
        "mlp.c_proj.bias": (D,),
    }
    for i in range(cfg.n_layer):
        for k, s in per_layer.items():
            shapes[f"transformer.h.{i}.{k}"] = s
    return shapes


# ---- reading a checkpoint directory -------------------------------------------------------------


def checkpoint_files(model_dir: Path) -> list[Path]:
    """The weight files of a HF model directory: sharded or single, safetensors preferred."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = model_dir / index_name
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as e:
                raise CheckpointError(f"{index}: not a valid shard index ({e})") from None
            files = [model_dir / f for f in dict.fromkeys(weight_map.values())]
            missing = [str(f) for f in files if not f.exists()]
            if missing:
                raise CheckpointError(f"{index}: shard files missing: {missing}")
            return files
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / single).exists():
            return [model_dir / single]
    raise FileNotFoundError(
        f"{model_dir}: no model.safetensors, pytorch_model.bin or shard index found"
    )


def _iter_bin(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"{path}: reading PyTorch .bin checkpoints needs torch (pip install 'octojax[torch]')"
        ) from None
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    for name in list(state):
        t = state.pop(name)
        if t.dtype == torch.bfloat16:
            yield name, t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        else:
            yield name, t.numpy()


def iter_checkpoint(model_dir: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (HF name, array) over every weight file, one tensor at a time."""
    for f in checkpoint_files(Path(model_dir)):
        yield from (iter_tensors(f) if f.suffix == ".safetensors" else _iter_bin(f))


def load_hf_params(
    model_dir: str | Path,
    cfg: ModelConfig | None = None,
    *,
    place: Callable[[tuple[str, ...], np.ndarray], jax.Array] | None = None,
    progress: bool = True,
) -> tuple[ModelConfig, dict]:
    """Read a HF GPTBigCode directory into an octojax parameter dict (nnx pure-dict layout).

    place(path, array) puts each finished buffer on devices (e.g. with a NamedSharding); by default
    arrays stay in host memory as NumPy.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: not a directory")
    cfg = cfg or ModelConfig.from_hf_json(model_dir)
    pd = np.dtype(jax.numpy.dtype(cfg.param_dtype))
    shapes = expected_shapes(cfg)
    out = jax.tree.map(lambda s: np.empty(s.shape, pd), param_shapes(cfg))
    seen: set[str] = set()
    pending: dict[int, dict[str, np.ndarray]] = {}  # c_attn weight/bias wait for each other
    layer_map = _simple_layer_map(cfg)
    remaining = {k: cfg.n_layer for k in out["blocks"]}

    def finish_block_param(name: str) -> None:
        remaining[name] -= 1
        if remaining[name] == 0 and place is not None:
            out["blocks"][name] = place(("blocks", name), out["blocks"][name])

    bar = tqdm(total=len(shapes), desc="import", unit="tensor", disable=not progress)
    for name, arr in iter_checkpoint(model_dir):
        key = (
            name
            if name.startswith("transformer.") or name.startswith("lm_head")
            else f"transformer.{name}"
        )
        if _IGNORED.search(key):
            continue
        if key not in shapes:
            raise CheckpointError(f"{model_dir}: unexpected tensor {name} for this config")
        if tuple(arr.shape) != shapes[key]:
            raise CheckpointError(
                f"{model_dir}: tensor {name} has shape {tuple(arr.shape)}, expected {shapes[key]} "
                f"from config.json"
            )
        seen.add(key)
        bar.update(1)
        arr = np.asarray(arr, dtype=np.float32) if arr.dtype != pd else arr
        short = key[len("transformer.") :]
        if short in _TOP:
            target = _TOP[short]
            out[target][...] = arr
            if place is not None:
                out[target] = place((target,), out[target])
            continue
        i_str, suffix = _LAYER.match(short).groups()
        i = int(i_str)
        if suffix.startswith("attn.c_attn."):
            got = pending.setdefault(i, {})
            got[suffix.rsplit(".", 1)[1]] = np.asarray(arr)
            if len(got) == 2:
                q, qb, kv, kvb = _split_c_attn(cfg, got["weight"], got["bias"])
                for n, v in (("q_kernel", q), ("q_bias", qb), ("kv_kernel", kv), ("kv_bias", kvb)):
                    out["blocks"][n][i] = v
                    finish_block_param(n)
                del pending[i]
            continue
        target, to_ox, _ = layer_map[suffix]
        out["blocks"][target][i] = to_ox(arr)
        finish_block_param(target)
    bar.close()
    missing = sorted(set(shapes) - seen)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise CheckpointError(f"{model_dir}: {len(missing)} tensors missing: {shown}")
    return cfg, out


def load_hf_model(model_dir: str | Path, cfg: ModelConfig | None = None, **kwargs) -> GPTBigCode:
    """A GPTBigCode module holding the weights of a HF directory."""
    cfg, params = load_hf_params(model_dir, cfg, **kwargs)
    return model_from_params(cfg, params)


# ---- export -------------------------------------------------------------------------------------


_LAYER_SUFFIXES = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
)  # fmt: skip


def hf_tensor_names(cfg: ModelConfig) -> list[str]:
    """HF tensor names in the order iter_hf_tensors yields them."""
    layers = [f"transformer.h.{i}.{s}" for i in range(cfg.n_layer) for s in _LAYER_SUFFIXES]
    return ["transformer.wte.weight", "transformer.wpe.weight", *layers,
            "transformer.ln_f.weight", "transformer.ln_f.bias"]  # fmt: skip


def fetch(array) -> np.ndarray:
    """One array as numpy on this host. An array sharded over several processes is gathered
    (every process must call this, in the same order); only that one tensor is held whole."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(jax.device_get(array))


def iter_hf_tensors(cfg: ModelConfig, params: dict) -> Iterator[tuple[str, np.ndarray]]:
    """octojax pure-dict parameters -> (HF name, array), one tensor fetched from the devices at a
    time (c_attn: its four parts), so host memory holds one tensor, not the model. Parameters
    sharded over several hosts are gathered: every process iterates, in step."""
    get = fetch
    yield "transformer.wte.weight", get(params["wte"])
    yield "transformer.wpe.weight", get(params["wpe"])
    layer_map = _simple_layer_map(cfg)
    blocks = params["blocks"]
    for i in range(cfg.n_layer):
        for suffix in _LAYER_SUFFIXES:
            if suffix == "attn.c_attn.weight":
                fused = _fuse_c_attn(
                    cfg,
                    *(get(blocks[k][i]) for k in ("q_kernel", "q_bias", "kv_kernel", "kv_bias")),
                )
                array = fused[0]
            elif suffix == "attn.c_attn.bias":
                array, fused = fused[1], None
            else:
                name, _, from_ox = layer_map[suffix]
                array = from_ox(get(blocks[name][i]))
            yield f"transformer.h.{i}.{suffix}", array
    yield "transformer.ln_f.weight", get(params["ln_f_scale"])
    yield "transformer.ln_f.bias", get(params["ln_f_bias"])


# weight files of an earlier export in the same folder: removed, so no stale shard is ever read
STALE_WEIGHTS = ("model.safetensors", "model-*-of-*.safetensors", INDEX_FILE,
                 "pytorch_model*.bin", "pytorch_model.bin.index.json")  # fmt: skip


def save_hf_checkpoint(
    out_dir: str | Path,
    cfg: ModelConfig,
    params: dict,
    *,
    dtype: str | None = None,
    tokenizer_dir: str | Path | None = None,
    max_shard_size: int | str = "5GB",
    write: bool = True,
) -> Path:
    """Write config.json + safetensors (+ the tokenizer files, if given) to out_dir.

    On a multi-host job every process calls this (parameters sharded across hosts are gathered
    tensor by tensor) and only the one with `write=True` writes.

    Weights go to model.safetensors, or to model-0000i-of-0000n.safetensors files of at most
    max_shard_size (transformers' default "5GB") plus model.safetensors.index.json. Tensors are
    pulled from the devices and written one at a time. Everything is written into a temporary
    sibling folder first and moved into out_dir only when complete (octojax/convert/staging.py).
    """
    np_dtype = np.dtype(jax.numpy.dtype(dtype or cfg.param_dtype))
    shapes = expected_shapes(cfg)
    specs = {n: (shapes[n], np_dtype) for n in hf_tensor_names(cfg)}
    hf_config = cfg.to_hf_dict()
    hf_config["torch_dtype"] = (
        str(np_dtype) if np_dtype != np.dtype(ml_dtypes.bfloat16) else "bfloat16"
    )
    if not write:
        for _ in iter_hf_tensors(cfg, params):  # take part in the gathers, write nothing
            pass
        return Path(out_dir)
    with staged_dir(out_dir, stale=STALE_WEIGHTS) as tmp:
        write_sharded(tmp, specs, iter_hf_tensors(cfg, params), max_shard_size)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        if tokenizer_dir is not None:
            from octojax.tokenizer import copy_tokenizer_files

            copy_tokenizer_files(tokenizer_dir, tmp, model_max_length=cfg.n_positions)
    return Path(out_dir)
