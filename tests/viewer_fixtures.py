"""Synthetic motions for the viewer tests: the G1's default pose with the left arm swinging."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.geometry import quat_rotate
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot


def swinging_arm(
    frames: int = 60, fps: float = 30.0, *, amplitude: float = 1.2, x: float = 0.0
) -> RobotMotion:
    """Default pose, left shoulder pitch swinging through ``amplitude`` rad; keypoints from the robot's own FK."""
    spec = load_robot("g1")
    t = np.arange(frames) / fps
    qpos = np.zeros((frames, 7 + spec.num_joints))
    qpos[:, 0] = x
    qpos[:, 2] = spec.default_root_height
    qpos[:, 3] = 1.0
    qpos[:, 7:] = spec.default_pos
    j = spec.joint_names.index("left_shoulder_pitch_joint")
    qpos[:, 7 + j] = -amplitude * np.sin(2 * np.pi * t / (frames / fps))
    contacts = np.ones((frames, 2), bool)
    contacts[frames // 2 :, 0] = False
    draft = RobotMotion.from_qpos("g1", qpos, fps, contacts=contacts)
    names = tuple(k.name for k in spec.keypoints)
    idx = [draft.body_index(k.body) for k in spec.keypoints]
    off = np.array([k.offset for k in spec.keypoints])
    quat = draft.body_quat_w[:, idx]
    kp = draft.body_pos_w[:, idx] + quat_rotate(quat, np.broadcast_to(off, (*quat.shape[:-1], 3)))
    return RobotMotion.from_qpos("g1", qpos, fps, contacts=contacts, keypoint_names=names, keypoint_pos_w=kp)


def write_clip(data_dir: Path, name: str, motion: RobotMotion, quality: dict | None = None) -> Path:
    """Write ``<data>/robot/<name>.npz`` (+ quality json) as the pipeline lays them out."""
    import json

    path = data_dir / "robot" / f"{name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    motion.save(path)
    if quality is not None:
        path.with_name(f"{name}.quality.json").write_text(json.dumps(quality))
    return path
