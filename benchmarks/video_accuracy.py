"""Video extraction measured against ground truth: one JSON line per clip.

Each mocap clip (CMU BVH from ../shared/data/cmu, DeepMimic clips shipped with pybullet) drives the Anny body
mesh, rendered offscreen (pipeline.motion.video_synth) from a fixed camera with known intrinsics; the video goes
through read_clip like any user video (intrinsics and subject height as clip params), and the result is
compared with the body's own keypoints (the ground truth), at the video's rate:

- PA-MPJPE: mean joint position error over the 17 keypoints after per-frame Procrustes alignment (mm); the
  same for the raw MediaPipe landmarks (no smoothing, no skeleton) as the reference in the same run.
- root error: the pelvis path after the best rotation about z and horizontal shift, mean and final error as
  a percentage of the distance travelled.
- contact agreement: fraction of (frame, foot) contact flags that agree with the clip's.

usage: python benchmarks/video_accuracy.py [--clips cmu:131_01 deepmimic:walk ...] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from pipeline.motion import HumanMotion, read_clip
from pipeline.motion.video_fit import canonical_points
from pipeline.motion.video_pose import detect_landmarks
from pipeline.motion.video_synth import (
    contact_agreement,
    default_camera,
    pa_mpjpe,
    render_video,
    root_error,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT = ["cmu:131_01", "cmu:131_02", "deepmimic:walk", "deepmimic:run", "deepmimic:dance_a"]


def clip_path(spec: str) -> Path:
    kind, name = spec.split(":", 1)
    if kind == "cmu":
        return DATA / "cmu" / f"{name}.bvh"
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{name}.txt"


def evaluate(spec: str, workdir: Path, fps: float, loops: int) -> dict:
    truth = read_clip(clip_path(spec), fps=fps)
    if truth.num_frames < 3 * fps and loops > 1:  # short DeepMimic cycles: play them back to back
        truth = _repeat(truth, loops)
    video = workdir / f"{spec.replace(':', '_')}.mp4"
    t0 = time.perf_counter()
    cam, truth = render_video(truth, video, camera=default_camera(truth))
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = read_clip(video, subject_height=truth.subject_height, video=cam.intrinsics())
    extract_s = time.perf_counter() - t0
    notes = got.source["video"]
    a, b = notes["kept"]
    ref = truth.pos_w[a:b]
    err = pa_mpjpe(got.pos_w, ref)
    root = root_error(got.pos_w[:, 0], ref[:, 0])
    lm = detect_landmarks(video)
    found = lm.found[a:b]
    raw = pa_mpjpe(canonical_points(lm.world_c[a:b][found]), ref[found])
    return {
        "bench": "video_accuracy",
        "clip": spec,
        "frames": truth.num_frames,
        "frames_with_person": notes["frames_with_person"],
        "frames_kept": b - a,
        "pa_mpjpe_mm": round(float(err.mean() * 1000), 1),
        "pa_mpjpe_median_mm": round(float(np.median(err) * 1000), 1),
        "pa_mpjpe_raw_landmarks_mm": round(float(raw.mean() * 1000), 1),
        "root_error_mean_pct": round(100 * root["mean"], 1),
        "root_error_final_pct": round(100 * root["final"], 1),
        "distance_m": round(root["distance_m"], 2),
        "contact_agreement": round(contact_agreement(got.contacts, truth.contacts[a:b]), 3),
        "up_from": notes["up_from"],
        "targets": {"pa_mpjpe_mm": 80, "root_error_mean_pct": 15, "contact_agreement": 0.85},
        "render_s": round(render_s, 1),
        "extract_s": round(extract_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _repeat(m: HumanMotion, loops: int) -> HumanMotion:
    """Chain a cyclic clip ``loops`` times, each copy continuing from where the previous one ended."""
    step = m.pos_w[-1, 0, :2] - m.pos_w[0, 0, :2]
    pos = [m.pos_w + np.array([*(k * step), 0.0]) for k in range(loops)]
    return m.replace(
        pos_w=np.concatenate(pos),
        quat_w=np.concatenate([m.quat_w] * loops),
        contacts=np.concatenate([m.contacts] * loops),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", nargs="+", default=DEFAULT)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument(
        "--loops", type=int, default=3, help="repeat short cyclic clips (DeepMimic) this many times"
    )
    p.add_argument("--workdir", default=None, help="keep the rendered videos here")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for spec in a.clips:
            print(json.dumps(evaluate(spec, work, a.fps, a.loops)), flush=True)


if __name__ == "__main__":
    main()
