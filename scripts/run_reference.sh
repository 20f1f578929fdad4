#!/usr/bin/env bash
# Run the reference interaction retargeter (holosoma_retargeting, in .venv-ref) on its own demo clips and
# cache its outputs (qpos npz + wall time) under cache/holosoma/ (gitignored), for the side-by-side benchmark.
# Usage: scripts/run_reference.sh [CLIP ...]   clips: sub3_largebox_003 sub10_largebox_049 mocap_climb_seq_0..4
# A climbing clip may be cut to a window of output frames (30 fps): mocap_climb_seq_0@70+100 runs frames
# 70..169 from a cut copy of the clip's folder under cache/holosoma_data/ (the reference reads whole files).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$ROOT/.venv-ref"
[[ -x "$VENV/bin/python" ]] || scripts/setup_ref_venv.sh "$VENV"
PKG="$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("holosoma_retargeting").submodule_search_locations[0])')"
OUT="$ROOT/cache/holosoma"
mkdir -p "$OUT"
clips=("$@")
[[ ${#clips[@]} -gt 0 ]] || clips=(sub3_largebox_003 sub10_largebox_049 mocap_climb_seq_0 mocap_climb_seq_1 \
  mocap_climb_seq_2 mocap_climb_seq_3 mocap_climb_seq_4)
cd "$PKG"
for clip in "${clips[@]}"; do
  if [[ -f "$OUT/$clip.time.json" ]]; then echo "cached: $clip"; continue; fi
  task="$clip"
  if [[ $clip == *@* ]]; then
    task="${clip%@*}"; win="${clip#*@}"; start="${win%+*}"; count="${win#*+}"
    name="${task}_f${start}-$((start + count))"
    src="$PKG/demo_data/climb/$task"; dst="$ROOT/cache/holosoma_data/cut/climb/$name"
    # The clip's MJCF names meshes by paths relative to the package root, three levels up from the clip.
    ln -sfn "$PKG/models" "$ROOT/cache/holosoma_data/models"
    ln -sfn "$PKG/demo_data" "$ROOT/cache/holosoma_data/demo_data"
    rm -rf "$dst"; mkdir -p "$dst"
    for f in "$src"/*; do [[ $f == *.npy ]] || cp -r "$f" "$dst/"; done
    "$VENV/bin/python" -c "import numpy as np, glob; a = np.load(glob.glob('$src/*.npy')[0]); \
np.save('$dst/${name}_joint_positions.npy', a[4 * $start : 4 * ($start + $count)])"
    args=(--data_path "$ROOT/cache/holosoma_data/cut/climb" --task-type climbing --data_format mocap
          --robot-config.robot-urdf-file models/g1/g1_29dof_spherehand.urdf)
    task="$name"; clip="$name"
    if [[ -f "$OUT/$clip.time.json" ]]; then echo "cached: $clip"; continue; fi
  elif [[ $clip == mocap_climb_* ]]; then
    args=(--data_path demo_data/climb --task-type climbing --data_format mocap
          --robot-config.robot-urdf-file models/g1/g1_29dof_spherehand.urdf)
  else
    args=(--data_path demo_data/OMOMO_new --task-type object_interaction --data_format smplh)
  fi
  start=$(date +%s.%N)
  MPLBACKEND=Agg "$VENV/bin/python" examples/robot_retarget.py "${args[@]}" --task-name "$task" \
    --save_dir "$OUT" > "$OUT/$clip.log" 2>&1
  end=$(date +%s.%N)
  frames=$("$VENV/bin/python" -c "import numpy as np; print(len(np.load('$OUT/${clip}_original.npz')['qpos']))")
  echo "{\"clip\": \"$clip\", \"seconds\": $(echo "$end - $start" | bc), \"frames\": $frames}" > "$OUT/$clip.time.json"
  cat "$OUT/$clip.time.json"
done
