#!/usr/bin/env bash
# Install every compiler, runtime and library that HumanEvalPack execution needs, offline-capable
# afterwards: Debian packages + npm's js-md5 + Python's numpy, then prebuild the shared artefacts
# (Rust crates, C++ precompiled header, Go build cache) via `python -m eval.execution.prepare`.
# Idempotent: when everything is present it only checks and returns in a few seconds.
# Usage (as root, from the repository root):  bash eval/setup_toolchains.sh
# Env: OCTOJAX_EVAL_HOME (default /opt/octojax-eval) holds node_modules, built crates and caches.
set -euo pipefail

HOME_DIR="${OCTOJAX_EVAL_HOME:-/opt/octojax-eval}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup_toolchains] %s\n' "$*"; }

# Debian packages: package name -> a file that proves it is installed (dpkg -s is slow-ish but exact).
DEB_PACKAGES=(
  g++ libboost-dev libssl-dev                          # C++ (boost for CPP/22,137; libcrypto CPP/162)
  golang-go golang-github-stretchr-testify-dev         # Go 1.19 + testify (GOPATH /usr/share/gocode)
  openjdk-17-jdk-headless                              # javac/java 17
  librust-regex-dev librust-aho-corasick-dev librust-memchr-dev librust-md5-dev  # Rust crates (regex default features need aho-corasick+memchr; rand: eval/toolchains/rand04)
  bubblewrap                                           # sandbox: read-only root, no network, PID ns
  python3 python3-numpy                                # the interpreter samples run in (needs numpy)
  util-linux procps                                    # unshare/setsid, ps for leak checks
)
if ! command -v node >/dev/null 2>&1; then DEB_PACKAGES+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then DEB_PACKAGES+=(npm); fi
if ! command -v rustc >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/rustc" ] && [ ! -x /root/.cargo/bin/rustc ]; then
  DEB_PACKAGES+=(rustc cargo)                        # rustup's toolchain is preferred when present
fi

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

mkdir -p "$HOME_DIR"
if [ ! -f "$HOME_DIR/node_modules/js-md5/package.json" ]; then
  log "npm install js-md5 into $HOME_DIR"
  (cd "$HOME_DIR" && npm install --no-audit --no-fund --no-save --prefix "$HOME_DIR" js-md5@0.8.3 >/dev/null)
else
  log "js-md5 present"
fi


log "preparing shared build artefacts in $HOME_DIR"
cd "$REPO_ROOT"
OCTOJAX_EVAL_HOME="$HOME_DIR" "$PYTHON" -m eval.execution.prepare
log "done"
