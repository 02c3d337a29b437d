#!/usr/bin/env bash
# Prepare, on a machine that reaches PyPI, what bench/device_suite.sh needs on the lent GPU machine
# and cannot fetch there (it reaches no registry), in one ignored folder that travels with the tree
# (carry it: the run tool takes at most 64 MiB; this stays under 20 MiB):
#   DEST/wheels/         the wheels octojax's core needs beyond the GPU image's packages
#                        (bench/device_wheels.py: pyproject's core dependencies minus the image's
#                        list in bench/device_image.py, with what those wheels need), for Python
#                        3.12 manylinux x86-64, checked to install together offline into a fresh
#                        target directory; DEST/wheels/wheels.json says what and why
#   DEST/humanevalpack/  a HumanEvalPack-shaped stand-in for the workload part (same token
#                        lengths, octojax's own source as text: bench/humaneval_shape.py)
#
#   bash bench/device_wheels.sh [--python-version 3.12] [--dest .device] [--data-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

PYV=3.12
DEST=.device
DATA=../shared/humanevalpack
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV="$2"; shift ;;
    --dest) DEST="$2"; shift ;;
    --data-dir) DATA="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "device_wheels.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
"$PY" bench/device_wheels.py --python-version "$PYV" --dest "$DEST/wheels"
"$PY" bench/humaneval_shape.py --data-dir "$DATA" --out "$DEST/humanevalpack"
echo "[device] $(du -sh "$DEST" | cut -f1) in $DEST: carry it with the run (carry: [\"$DEST\"])"
