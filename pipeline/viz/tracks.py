"""What the viewer draws for one clip: the prepared track (skeleton, overlays) and a robot's posed meshes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS
from pipeline.robot.model import mujoco_model
from pipeline.robot.motion import RobotMotion
from pipeline.viz.catalog import LoadedClip
from pipeline.viz.meshes import body_meshes
from pipeline.viz.overlays import FrameFlags, frame_flags

CONTACT_RGB = np.array([0.2, 0.8, 0.3])
NEAR_RGB = np.array([1.0, 0.6, 0.1])
BAD_RGB = np.array([0.9, 0.1, 0.1])
MESH_CELL = 0.008  # metres: mesh simplification for software-rendered browsers (pipeline.viz.meshes.simplify)


def _rgb255(rgb: np.ndarray) -> tuple[int, int, int]:
    c = np.clip(np.round(np.asarray(rgb) * 255), 0, 255).astype(int)
    return int(c[0]), int(c[1]), int(c[2])


def joint_groups(joint_names: Sequence[str]) -> dict[str, list[int]]:
    """Joint indices grouped for plotting: left/right leg, left/right arm, torso (everything else)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(joint_names):
        side = "left " if name.startswith("left_") else "right " if name.startswith("right_") else ""
        if any(k in name for k in ("hip", "knee", "ankle")):
            key = f"{side}leg"
        elif any(k in name for k in ("shoulder", "elbow", "wrist", "hand")):
            key = f"{side}arm"
        else:
            key = "torso"
        groups.setdefault(key, []).append(i)
    return groups


def skeleton_segments(names: Sequence[str], parents: Sequence[int] | None, pos_w: np.ndarray) -> np.ndarray:
    """(S, 2, 3) bone segments of (K, 3) keypoints: given ``parents``, else the canonical parents by name."""
    if parents is not None:
        pairs = [(c, p) for c, p in enumerate(parents) if p >= 0]
    else:
        index = {n: i for i, n in enumerate(names)}
        pairs = [
            (index[CANONICAL_JOINTS[c]], index[CANONICAL_JOINTS[p]])
            for c, p in enumerate(CANONICAL_PARENTS)
            if p >= 0 and CANONICAL_JOINTS[c] in index and CANONICAL_JOINTS[p] in index
        ]
    if not pairs:
        return np.zeros((0, 2, 3))
    idx = np.array(pairs)
    return np.stack([pos_w[idx[:, 0]], pos_w[idx[:, 1]]], axis=1)


@dataclass(frozen=True)
class Track:
    """What the viewer animates for one clip, prepared once at load time."""

    clip: LoadedClip
    fps: float
    num_frames: int
    skeleton_names: tuple[str, ...]
    skeleton_parents: tuple[int, ...] | None
    skeleton_pos_w: np.ndarray  # (T, K, 3)
    flags: FrameFlags | None

    @property
    def robot(self) -> RobotMotion | None:
        return self.clip.robot


def prepare(clip: LoadedClip, *, progress: Callable[[int, int], None] | None = None) -> Track:
    """Pick the skeleton to draw and compute per-frame overlays (the slow part, reported via ``progress``)."""
    robot, human = clip.robot, clip.human
    if robot is not None and robot.keypoint_pos_w.shape[1]:
        names, parents, pos = robot.keypoint_names, None, robot.keypoint_pos_w
    elif human is not None:
        names, parents, pos = human.joint_names, tuple(int(p) for p in human.parents), human.pos_w
    else:
        names, parents, pos = (), None, np.zeros((robot.num_frames if robot else 1, 0, 3))
    flags = frame_flags(robot, progress=progress) if robot is not None else None
    timing = robot if robot is not None else human
    assert timing is not None
    return Track(clip, timing.fps, timing.num_frames, tuple(names), parents, np.asarray(pos), flags)


class RobotDrawing:
    """One robot's body meshes in the scene, posed per frame and tinted by the overlays."""

    def __init__(self, server: Any, robot: str, root: str, *, offset: np.ndarray, tint: np.ndarray | None):
        model = mujoco_model(robot)
        self.server, self.offset = server, offset
        self.meshes = body_meshes(model, cell=MESH_CELL)
        base = [m.rgb if tint is None else 0.5 * m.rgb + 0.5 * tint for m in self.meshes]
        self.base_rgb = np.array(base)
        self.handles = [
            server.scene.add_mesh_simple(
                f"{root}/{m.body}",
                m.vertices,
                m.faces,
                color=_rgb255(c),
                flat_shading=True,  # simplified meshes: smooth normals would average across merged vertices
                cast_shadow=False,
                receive_shadow=False,
            )
            for m, c in zip(self.meshes, base, strict=True)
        ]
        self.current_rgb = self.base_rgb.copy()
        self.body_of_mesh = np.array([m.body_index for m in self.meshes])
        mesh_of_body = {m.body_index: i for i, m in enumerate(self.meshes)}
        spec_joints = [model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] != 0]
        self.mesh_of_joint = np.array(
            [mesh_of_body.get(int(model.joint(n).bodyid[0]) - 1, -1) for n in spec_joints]
        )
        feet = [
            b
            for b in ("left_ankle_roll_link", "right_ankle_roll_link")
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) >= 0
        ]
        self.mesh_of_foot = [mesh_of_body.get(model.body(b).id - 1, -1) for b in feet]
        self.mesh_of_name = {m.body: i for i, m in enumerate(self.meshes)}

    def set_visible(self, visible: bool) -> None:
        for h in self.handles:
            h.visible = visible

    def pose(self, motion: RobotMotion, frame: int, flags: FrameFlags | None, overlays: bool) -> None:
        pos = motion.body_pos_w[frame, self.body_of_mesh] + self.offset
        quat = motion.body_quat_w[frame, self.body_of_mesh]
        rgb = self.base_rgb.copy()
        if flags is not None and overlays:
            for side, m in enumerate(self.mesh_of_foot):
                if m >= 0 and flags.contacts.shape[1] > side and flags.contacts[frame, side]:
                    rgb[m] = CONTACT_RGB
            for j in np.flatnonzero(flags.near_limit[frame]):
                if self.mesh_of_joint[j] >= 0:
                    rgb[self.mesh_of_joint[j]] = BAD_RGB if flags.beyond_limit[frame, j] else NEAR_RGB
            for a, b in flags.self_collision_pairs[frame]:
                for name in (a, b):
                    if name in self.mesh_of_name:
                        rgb[self.mesh_of_name[name]] = BAD_RGB
        for i, h in enumerate(self.handles):
            h.position = pos[i]
            h.wxyz = quat[i]
            if not np.array_equal(rgb[i], self.current_rgb[i]):
                h.color = _rgb255(rgb[i])
        self.current_rgb = rgb
