#!/usr/bin/env bash
# The GPU device suite: everything worth measuring when a GPU is lent, in one command, within 8
# minutes on one H200, with no network. First it installs what the machine's image lacks from the
# wheel folder that bench/device_wheels.sh made (offline, --no-index: never the network) into a
# fresh target directory put on PYTHONPATH, and says in one line what it installed. Then
# bench/device_suite.py runs the parts, each in its own time box under one overall budget:
#   environment  versions, devices, nvidia-smi, the carried wheels' requirements, octojax imports
#   gpu_tests    tests/test_gpu.py (cuDNN vs XLA forward and gradients, bf16 train step, decoding)
#   train        bench/train_bench.py --compare-hf: 1b shape, 8 x 2048, bf16; octojax first
#                (written at once), transformers on CUDA second in its own box
#   decode       bench/generate_bench.py --compare-hf: batch 1 and 32; octojax first, then
#                transformers on CUDA (default generate, then static cache + torch.compile)
#   workload     bench/generate_bench.py --workload humanevalpack, continuous batching, 164 x 20
#                samples on the HumanEvalPack stand-in from bench/device_wheels.sh
# Output in DIR ($OUT, else --out, else bench_out/device-<time>): results.json, summary.md,
# suite.log, env.json, gpu_tests.xml, train.json, decode.json, workload.json (bench/README.md).
# Exit status 0 when every part is ok.
#
#   bash bench/device_wheels.sh                   # once, on a machine with PyPI (makes .device/)
#   bash bench/device_suite.sh [--out DIR]        # on the GPU machine
#   bash bench/device_suite.sh --dry-run          # on CPU: the same code paths, tiny shapes
# Options: --device-dir DIR (default .device), --budget SECONDS (default 450; dry run 1800).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DRY=()
DIR="${OUT:-}"
DEVICE_DIR="$ROOT/.device"
BUDGET=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=(--dry-run) ;;
    --out) DIR="$2"; shift ;;
    --device-dir) DEVICE_DIR="$2"; shift ;;
    --budget) BUDGET=(--budget "$2"); shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "device_suite.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
DIR="${DIR:-bench_out/device-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
DEVICE_DIR=$(cd "$DEVICE_DIR" 2>/dev/null && pwd || echo "$DEVICE_DIR")
PY=${PYTHON:-python3}
: > "$DIR/suite.log"

# -- install: the carried wheels only, offline, into a fresh target directory
WHEELS="$DEVICE_DIR/wheels"
SITE=$(mktemp -d "${TMPDIR:-/tmp}/octojax-device-site.XXXXXX")
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  if PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null "$PY" -m pip install -q --no-index --no-deps \
      --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl >> "$DIR/suite.log" 2>&1; then
    NAMES=$(for w in "$WHEELS"/*.whl; do b=$(basename "$w"); echo "${b%%-*} $(echo "$b" | cut -d- -f2)"; done | paste -sd, | sed 's/,/, /g')
    INSTALL="installed offline from $WHEELS into $SITE: $NAMES"
  else
    INSTALL="FAILED to install $WHEELS offline (see suite.log); continuing with the image's packages"
  fi
else
  INSTALL="nothing installed: no wheels in $WHEELS (make them with bash bench/device_wheels.sh where PyPI is reachable)"
fi
echo "[suite] $INSTALL" | tee -a "$DIR/suite.log"

export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export SUITE_INSTALL="$INSTALL" SUITE_SITE="$SITE"
"$PY" bench/device_suite.py run --out "$DIR" --device-dir "$DEVICE_DIR" "${DRY[@]}" "${BUDGET[@]}"
rc=$?
rm -rf "$SITE"
exit $rc
