"""End-to-end video extraction speed (frames per second): one JSON line.

Input: a 640x480 ground-truth video rendered from a CMU clip (rendering is not timed), and the real footage
of OpenCV's vtest.avi (768x576, small people: the people-detector + crop path) when opencv-doc is installed.
Timed: read_clip (decode, pose per frame, fitting, floor, contacts, processing). The references measured in
the same run: decoding alone, and decoding + the pose model alone, so the fitting's own cost shows.

usage: python benchmarks/video_extract.py [--frames 300] [--vtest-frames 100]
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

from pipeline.motion import read_clip
from pipeline.motion.video_pose import PoseEstimator, open_frames
from pipeline.motion.video_synth import default_camera, render_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def decode_fps(path: Path) -> float:
    t0 = time.perf_counter()
    _, _, _, _, frames = open_frames(path)
    n = sum(1 for _ in frames)
    return n / (time.perf_counter() - t0)


def pose_fps(path: Path) -> float:
    t0 = time.perf_counter()
    _, _, _, _, frames = open_frames(path)
    n = 0
    with PoseEstimator() as pose:
        for _, rgb in frames:
            pose(rgb)
            n += 1
    return n / (time.perf_counter() - t0)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def extract_fps(path: Path, **kwargs: object) -> tuple[float, float, int]:
    """(frames per wall-clock second, frames per CPU second of this process, output frames)."""
    t0, c0 = time.perf_counter(), _cpu_s()
    m = read_clip(path, **kwargs)  # type: ignore[arg-type]
    frames = int(m.source["video"]["frames_decoded"])
    return frames / (time.perf_counter() - t0), frames / (_cpu_s() - c0), m.num_frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300, help="frames of the rendered clip")
    p.add_argument("--vtest-frames", type=int, default=100, help="frames of vtest.avi (0: skip)")
    a = p.parse_args()
    out: dict[str, object] = {"bench": "video_extract", "bar_fps": 30}
    with tempfile.TemporaryDirectory() as tmp:
        truth = read_clip(DATA / "cmu" / "131_01.bvh", fps=30.0)
        n = min(a.frames, truth.num_frames)
        truth = truth.replace(pos_w=truth.pos_w[:n], quat_w=truth.quat_w[:n], contacts=truth.contacts[:n])
        video = Path(tmp) / "rendered.mp4"
        cam, truth = render_video(truth, video, camera=default_camera(truth, width=640, height=480))
        fps, cpu_fps, kept = extract_fps(video, subject_height=truth.subject_height, video=cam.intrinsics())
        out["rendered_640x480"] = {
            "frames": n,
            "frames_out": kept,
            "end_to_end_fps": round(fps, 1),
            "frames_per_cpu_s": round(cpu_fps, 1),
            "decode_only_fps": round(decode_fps(video), 1),
            "decode_and_pose_fps": round(pose_fps(video), 1),
        }
        if VTEST.exists() and a.vtest_frames > 0:
            import cv2

            cap = cv2.VideoCapture(str(VTEST))
            short = Path(tmp) / "vtest.avi"
            fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
            w = cv2.VideoWriter(str(short), fourcc, 10, (768, 576))
            for _ in range(a.vtest_frames):
                ok, frame = cap.read()
                if not ok:
                    break
                w.write(frame)
            w.release()
            fps, cpu_fps, kept = extract_fps(short, subject_height=1.7)
            out["vtest_768x576_small_people"] = {
                "frames": a.vtest_frames,
                "frames_out": kept,
                "end_to_end_fps": round(fps, 1),
                "frames_per_cpu_s": round(cpu_fps, 1),
                "decode_and_pose_full_frame_fps": round(pose_fps(short), 1),
            }
    out["cpu_count"] = os.cpu_count()
    out["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine slows every number
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
