#!/usr/bin/env bash
# Reference interaction retargeter (holosoma_retargeting 0.1.0, Apache-2.0) in its own venv, for the
# side-by-side benchmark only. It needs mujoco==3.3.7 (with MuJoCo 4 its joint Jacobians come out zero), so it
# cannot share the project venv. torch is pinned to the project's CPU build so nothing pulls a CUDA build.
# Usage: scripts/setup_ref_venv.sh [VENV_DIR]   (default .venv-ref, gitignored)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-ref}"
if [[ -f "$VENV/.installed" ]]; then
  echo "$VENV ready"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -U pip wheel
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q mujoco==3.3.7 holosoma_retargeting==0.1.0
touch "$VENV/.installed"
echo "$VENV ready: $("$VENV/bin/python" -c 'import mujoco; print("mujoco", mujoco.__version__)')"
