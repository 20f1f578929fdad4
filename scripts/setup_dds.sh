#!/usr/bin/env bash
# CycloneDDS 0.10.2 (the version the G1 speaks; 11.x does not interoperate) and the Unitree SDK, into the venv.
# Needs Debian's cyclonedds-dev: installed here with apt-get when run as root, else install it yourself.
# The Python binding is built against it: CYCLONEDDS_HOME points at a folder whose include/, bin/, lib/ link to Debian's.
# Usage: scripts/setup_dds.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="$VENV/bin/python"
if "$PY" -c 'import cyclonedds, unitree_sdk2py; import importlib.metadata as m; assert m.version("cyclonedds").startswith("0.10.")' 2>/dev/null; then
  exit 0
fi
if ! dpkg -s cyclonedds-dev >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "scripts/setup_dds.sh: installing Debian's cyclonedds-dev" >&2
  apt-get update -qq && apt-get install -y -qq cyclonedds-dev >/dev/null
fi
if ! dpkg -s cyclonedds-dev >/dev/null 2>&1; then
  echo "scripts/setup_dds.sh: Debian package cyclonedds-dev (0.10.x) is missing: apt-get install -y cyclonedds-dev" >&2
  exit 1
fi
LIBDIR="$(dirname "$(dpkg -L libddsc0debian cyclonedds-dev | grep -m1 '/libddsc\.so')")"
HOME_DIR="$VENV/cyclonedds-home"
mkdir -p "$HOME_DIR"
ln -sfn /usr/include "$HOME_DIR/include"
ln -sfn /usr/bin "$HOME_DIR/bin"
ln -sfn "$LIBDIR" "$HOME_DIR/lib"
CYCLONEDDS_HOME="$(cd "$HOME_DIR" && pwd)" "$PY" -m pip install -q --no-build-isolation cyclonedds==0.10.2 \
  || CYCLONEDDS_HOME="$(cd "$HOME_DIR" && pwd)" "$PY" -m pip install -q cyclonedds==0.10.2
"$PY" -m pip install -q --no-deps unitree-sdk2py-dimos==1.0.3
"$PY" -c 'import cyclonedds, unitree_sdk2py; import importlib.metadata as m; print("cyclonedds", m.version("cyclonedds"), "+ unitree_sdk2py ready")'
