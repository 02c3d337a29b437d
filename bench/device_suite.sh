#!/usr/bin/env bash
# The GPU device suite: everything worth running when a GPU is lent, in one go, under 8 minutes on
# one H100/H200. Writes into one folder (default $OUT, else bench_out/device-<time>):
#   env.txt             jax/flax/torch/transformers versions, devices, nvidia-smi
#   gpu_tests.log       pytest tests/test_gpu.py (cuDNN vs XLA fwd+grad, bf16 step, generation)
#   train.json/.log     bench/train_bench.py --compare-hf (starcoderbase-1b shape, 8 x 2048, bf16)
#   generate.json/.log  bench/generate_bench.py --compare-hf (1b shape, batch 1 and 32)
#   summary.md          one table of the results and each command's exit status
# Each command has its own time limit, so a slow one cannot eat the others' time; a partial log
# still lands in the folder. Exit status: 0 when every command succeeded.
#
#   bash bench/device_suite.sh [--out DIR]      # on the GPU machine
#   bash bench/device_suite.sh --dry-run        # on CPU: every command starts, with tiny shapes
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DRY=0
DIR="${OUT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) DIR="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "device_suite.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
DIR="${DIR:-bench_out/device-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
STATUS="$DIR/status.tsv"
: > "$STATUS"

# -- environment: install octojax's own dependencies only if an import fails (never torch: the
# machine's CUDA build must stay; without torch the Hugging Face comparisons fail and say so)
if ! "$PY" -c "import jax, flax, optax, orbax.checkpoint, safetensors, ml_dtypes, pydantic, yaml, tqdm, pytest" 2>/dev/null; then
  echo "[suite] a dependency is missing: pip install -e . (core dependencies only)"
  "$PY" -m pip install -q -e . || echo "[suite] pip install failed; continuing"
fi
{
  "$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "torch", "transformers", "safetensors"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as e:  # report, do not stop: the commands below say what they need
        print(name, "MISSING", type(e).__name__, e)
import jax
print("backend", jax.default_backend(), "devices", jax.devices())
EOF
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    nvidia-smi
  else
    echo "nvidia-smi: not available"
  fi
} > "$DIR/env.txt" 2>&1
cat "$DIR/env.txt"

# run NAME LIMIT_S CMD...: run with a time limit, log to NAME.log, record the exit status
run() {
  local name=$1 limit=$2; shift 2
  echo "[suite] $name: $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$DIR/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$*" >> "$STATUS"
  tail -n 3 "$DIR/$name.log"
  echo "[suite] $name: exit $rc after $((SECONDS - t0)) s"
}

if [ "$DRY" = 1 ]; then
  # CPU: the same commands with tiny shapes, so every import, flag and output path is exercised
  export JAX_PLATFORMS=cpu
  run gpu_tests 300 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py
  run train 300 "$PY" bench/train_bench.py --preset test --seq-len 64 --batch 2 --steps 1 \
    --warmup 1 --repeats 1 --compare-hf --json "$DIR/train.json"
  run generate 300 "$PY" bench/generate_bench.py --preset test --batch-sizes 1 --prompt-len 8 \
    --new-tokens 4 --repeats 1 --compare-hf --json "$DIR/generate.json"
else
  export JAX_PLATFORMS=cuda  # tests/conftest.py would otherwise pin the tests to the CPU
  run gpu_tests 120 "$PY" -m pytest -q -rA -p no:cacheprovider tests/test_gpu.py
  run train 200 "$PY" bench/train_bench.py --compare-hf --json "$DIR/train.json"
  run generate 120 "$PY" bench/generate_bench.py --compare-hf --batch-sizes 1 32 --repeats 2 \
    --json "$DIR/generate.json"
fi

# -- summary.md from the JSON files (and, for an interrupted benchmark, its JSON log lines)
"$PY" - "$DIR" <<'EOF'
import json, sys
from pathlib import Path

d = Path(sys.argv[1])
status = [line.split("\t") for line in (d / "status.tsv").read_text().splitlines() if line]
env = [l for l in (d / "env.txt").read_text().splitlines() if l and not l.startswith(("|", "+"))]
out = ["# Device suite", "", "```", *env[:14], "```", "",
       "| command | exit | seconds |", "| --- | --- | --- |"]
out += [f"| `{name}` | {rc}{' (time limit)' if rc in ('124', '137') else ''} | {s} |"
        for name, rc, s, _ in status]

def load(name):
    p = d / f"{name}.json"
    if p.exists():
        return json.loads(p.read_text())
    runs = []  # partial: the JSON lines printed so far
    for line in (d / f"{name}.log").read_text(errors="replace").splitlines() if (d / f"{name}.log").exists() else []:
        try:
            runs.append(json.loads(line))
        except ValueError:
            pass
    return {"partial": runs} if runs else None

train = load("train")
out += ["", "## Training (bench/train_bench.py)", ""]
if train and "octojax" in train:
    o, h = train["octojax"], train.get("hf") or {}
    out += [f"shape {train['shape']}, batch {train['batch']} x {train['seq_len']}, {train['dtype']}, remat {train['remat']}", "",
            "| | tokens/s | MFU | step s |", "| --- | --- | --- | --- |",
            f"| octojax | {o['tokens_per_s']} | {o['mfu']} | {o['step_s_best']} |"]
    if h:
        out += [f"| Hugging Face | {h['tokens_per_s']} | {h['mfu']} | {h['step_s_best']} |", "",
                f"octojax / HF: **{train['octojax_over_hf']}x**"]
else:
    out += ["no complete result; see train.log", "", "```", json.dumps(train)[:1500], "```"]

gen = load("generate")
out += ["", "## Generation (bench/generate_bench.py)", ""]
runs = (gen or {}).get("runs") or [r for r in (gen or {}).get("partial", []) if "batch" in r]
if runs:
    out += ["| batch | octojax tok/s | HF tok/s | ratio |", "| --- | --- | --- | --- |"]
    out += [f"| {r['batch']} | {r['octojax_tokens_per_s']} | {r.get('hf_tokens_per_s', '-')} | "
            f"{r.get('speedup_vs_hf', '-')} |" for r in runs]
else:
    out += ["no result; see generate.log"]

tests = (d / "gpu_tests.log").read_text(errors="replace").splitlines() if (d / "gpu_tests.log").exists() else []
out += ["", "## GPU tests (tests/test_gpu.py)", "", "```", *tests[-15:], "```", ""]
(d / "summary.md").write_text("\n".join(out))
print("\n".join(out))
EOF

echo "[suite] results in $DIR"
# non-zero when any command failed
! cut -f2 "$STATUS" | grep -qv '^0$'
