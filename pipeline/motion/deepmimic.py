"""DeepMimic motion files (pybullet's ``pybullet_data/data/motions/humanoid3d_*.txt``).

Layout, as pybullet's own DeepMimic environment reads it (``pybullet_envs/deep_mimic/env/
humanoid_pose_interpolator.py``, ``Slerp``): JSON ``{"Loop": "wrap"|"none", "Frames": [[...44 values...]]}``,
each frame ``[duration, root pos (3), root rot (4), chest (4), neck (4), right hip (4), right knee (1),
right ankle (4), right shoulder (4), right elbow (1), left hip (4), left knee (1), left ankle (4),
left shoulder (4), left elbow (1)]``. Quaternions are stored **w, x, y, z**: pybullet builds its (x, y, z, w)
quaternions as ``[f[5], f[6], f[7], f[4]]``. The root pose is in a y-up world, in metres; spherical joint
rotations are relative to the parent link; knees and elbows are angles (rad) about the joint's z axis.
``tests/test_motion_deepmimic.py`` checks this against pybullet's own kinematics of ``humanoid.urdf``.

The skeleton is ``pybullet_data/humanoid/humanoid.urdf`` loaded with ``globalScaling=0.25`` (as pybullet's
env does). Its rest pose stands upright, arms down, facing +x with the left side at -z (y up); rotations are
re-expressed against the canonical rest pose (:func:`pipeline.motion.process.rest_correction`).

Keypoints: ``pelvis`` root, ``torso`` chest joint (the only spine joint), ``head`` the bottom of the head
sphere in the neck link (base of the skull), shoulders/elbows/hips/knees/ankles their joints, wrists the
fixed wrist frames. DeepMimic has no toe joint: ``*_toe`` is the centre of the front face of the foot box
(collision box of the ankle link), i.e. the tip of the foot at mid-sole height. The sole offsets recorded
for floor alignment come from the same box (ankle joint and toe point heights above the box bottom).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.geometry import matrix_to_quat, quat_mul, quat_to_matrix
from pipeline.io import sha256_file
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, CONTACT_NAMES, HumanMotion

SCALE = 0.25  # pybullet's DeepMimic env loads humanoid.urdf with globalScaling=0.25
FRAME_SIZE = 44
# (joint name, number of values) after duration, root pos, root rot; in file order.
JOINT_LAYOUT: tuple[tuple[str, int], ...] = (
    ("chest", 4),
    ("neck", 4),
    ("right_hip", 4),
    ("right_knee", 1),
    ("right_ankle", 4),
    ("right_shoulder", 4),
    ("right_elbow", 1),
    ("left_hip", 4),
    ("left_knee", 1),
    ("left_ankle", 4),
    ("left_shoulder", 4),
    ("left_elbow", 1),
)
# y-up, facing +x, left at -z  ->  z-up, facing +x, left at +y (rows: world axes in file coordinates)
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def urdf_path() -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "humanoid" / "humanoid.urdf"


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    kind: str  # fixed | spherical | revolute
    parent: str  # parent link
    child: str  # child link
    origin: np.ndarray  # (3,) metres, in the parent link frame (all origins in this URDF have rpy 0)
    axis: np.ndarray  # (3,)


@dataclass(frozen=True)
class DeepMimicSkeleton:
    joints: tuple[UrdfJoint, ...]  # topological order (parents first)
    foot_box: tuple[np.ndarray, np.ndarray]  # (centre (3,), size (3,)) in the ankle link frame, metres
    head_radius: float
    head_centre: np.ndarray  # (3,) in the neck link frame

    def joint(self, name: str) -> UrdfJoint:
        return next(j for j in self.joints if j.name == name)


def _vec(text: str | None) -> np.ndarray:
    return np.array([float(v) for v in (text or "0 0 0").split()])


@lru_cache(maxsize=1)
def load_skeleton(path: str | None = None) -> DeepMimicSkeleton:
    """Parse humanoid.urdf (joint origins, foot boxes, head sphere), scaled as pybullet's env loads it."""
    text = Path(path or urdf_path()).read_text(errors="replace")
    root = ET.fromstring(text.replace("\x00", "").strip())  # the shipped file ends with a NUL byte
    joints = []
    for j in root.findall("joint"):
        origin = j.find("origin")
        if origin is not None and np.abs(_vec(origin.get("rpy"))).max() > 0:
            raise InputError(path or urdf_path(), f"joint {j.get('name')} has a rotated origin: unsupported")
        axis = j.find("axis")
        joints.append(
            UrdfJoint(
                name=str(j.get("name")),
                kind=str(j.get("type")),
                parent=str(j.find("parent").get("link")),  # type: ignore[union-attr]
                child=str(j.find("child").get("link")),  # type: ignore[union-attr]
                origin=_vec(origin.get("xyz") if origin is not None else None) * SCALE,
                axis=_vec(axis.get("xyz")) if axis is not None else np.array([0.0, 0.0, 1.0]),
            )
        )
    links = {lk.get("name"): lk for lk in root.findall("link")}

    def collision(link: str, tag: str) -> tuple[np.ndarray, ET.Element]:
        col = links[link].find("collision")
        assert col is not None
        geom = col.find(f"geometry/{tag}")
        assert geom is not None
        return _vec(col.find("origin").get("xyz")) * SCALE, geom  # type: ignore[union-attr]

    box_c, box = collision("left_ankle", "box")
    head_c, sphere = collision("neck", "sphere")
    return DeepMimicSkeleton(
        joints=tuple(joints),
        foot_box=(box_c, _vec(box.get("size")) * SCALE),
        head_radius=float(sphere.get("radius", "0")) * SCALE,
        head_centre=head_c,
    )


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    half = 0.5 * angle[:, None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=1)


def forward_kinematics(
    frames: np.ndarray, skel: DeepMimicSkeleton, *, quat_order: str = "wxyz"
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Link frames in the file's y-up world: ({link: (T, 3)}, {link: (T, 3, 3)}).

    ``quat_order`` exists so tests can show what the other reading would give; files are wxyz.
    """

    def quat(block: np.ndarray) -> np.ndarray:
        q = block if quat_order == "wxyz" else block[:, [3, 0, 1, 2]]
        n = np.linalg.norm(q, axis=1, keepdims=True)
        return q / np.where(n > 0, n, 1.0)

    pos = {"root": frames[:, 1:4]}
    rot = {"root": quat_to_matrix(quat(frames[:, 4:8]))}
    pos["base"], rot["base"] = pos["root"], rot["root"]
    local: dict[str, np.ndarray] = {}
    col = 8
    for name, n in JOINT_LAYOUT:
        block = frames[:, col : col + n]
        col += n
        axis = skel.joint(name).axis
        local[name] = quat(block) if n == 4 else _axis_angle(axis, block[:, 0])
    t = frames.shape[0]
    for j in skel.joints:
        if j.child in pos:
            continue
        r_p, p_p = rot[j.parent], pos[j.parent]
        pos[j.child] = p_p + np.einsum("tij,j->ti", r_p, j.origin)
        if j.kind == "fixed":
            rot[j.child] = r_p
        elif j.name in local:
            rot[j.child] = r_p @ quat_to_matrix(local[j.name])
        else:
            raise InputError(urdf_path(), f"joint {j.name} ({j.kind}) has no values in the motion layout")
    assert all(v.shape[0] == t for v in pos.values())
    return pos, rot


def keypoints(
    pos: dict[str, np.ndarray], rot: dict[str, np.ndarray], skel: DeepMimicSkeleton
) -> tuple[np.ndarray, np.ndarray]:
    """Canonical keypoint positions (T, 17, 3) and rotation matrices (T, 17, 3, 3), file frame (y-up)."""
    box_c, box_size = skel.foot_box
    toe_local = box_c + np.array([0.5 * box_size[0], 0.0, 0.0])
    head_local = skel.head_centre - np.array([0.0, skel.head_radius, 0.0])
    table: dict[str, tuple[str, np.ndarray]] = {
        "pelvis": ("root", np.zeros(3)),
        "torso": ("chest", np.zeros(3)),
        "head": ("neck", head_local),
    }
    for side in ("left", "right"):
        for kp, link in (("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist"), ("hip", "hip")):
            table[f"{side}_{kp}"] = (f"{side}_{link}", np.zeros(3))
        table[f"{side}_knee"] = (f"{side}_knee", np.zeros(3))
        table[f"{side}_ankle"] = (f"{side}_ankle", np.zeros(3))
        table[f"{side}_toe"] = (f"{side}_ankle", toe_local)
    p = np.stack(
        [pos[table[n][0]] + np.einsum("tij,j->ti", rot[table[n][0]], table[n][1]) for n in CANONICAL_JOINTS],
        1,
    )
    r = np.stack([rot[table[n][0]] for n in CANONICAL_JOINTS], 1)
    return p, r


def load_frames(path: Path) -> tuple[np.ndarray, str]:
    """(T, 44) frames and the Loop value; InputError on anything malformed."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not a DeepMimic motion file (invalid JSON: {e})") from None
    if not isinstance(data, dict) or "Frames" not in data:
        raise InputError(path, "not a DeepMimic motion file: no 'Frames' list")
    rows = data["Frames"]
    if not isinstance(rows, list) or not rows:
        raise InputError(path, "the clip has zero frames")
    for k, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != FRAME_SIZE:
            n = len(row) if isinstance(row, list) else type(row).__name__
            raise InputError(path, f"frame {k} has {n} values, expected {FRAME_SIZE}")
    try:
        frames = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(path, "a frame value is not a number") from None
    bad = ~np.isfinite(frames)
    if bad.any():
        f, c = np.argwhere(bad)[0]
        raise InputError(path, f"NaN or infinite value at frame {f}, value {c}")
    loop = str(data.get("Loop", "none"))
    if loop not in ("wrap", "none"):
        raise InputError(path, f"Loop must be 'wrap' or 'none', got '{loop}'")
    return frames, loop


def uniform_rate(frames: np.ndarray, path: Path) -> tuple[float, np.ndarray]:
    """(fps, times (T,)): the dominant frame rate and each frame's time (durations are per frame)."""
    dur = frames[:-1, 0]
    if frames.shape[0] > 1 and (dur <= 0).any():
        raise InputError(path, f"frame {int(np.argmax(dur <= 0))} has a non-positive duration")
    if frames.shape[0] == 1:
        return (float(1.0 / frames[0, 0]) if frames[0, 0] > 0 else 30.0), np.zeros(1)
    nominal = float(np.median(dur))
    # times in nominal frame periods: exactly k / fps for evenly timed clips despite the printed rounding
    times = np.concatenate(
        [[0.0], np.cumsum(np.where(np.abs(dur / nominal - 1.0) < 1e-3, 1.0, dur / nominal))]
    )
    fps = 1.0 / nominal
    if abs(fps - round(fps)) < 1e-4 * fps:  # durations are printed to 6 decimals: 0.016666 means 60 fps
        fps = float(round(fps))
    times = times / fps
    return fps, times


def read_deepmimic(path: str | Path) -> HumanMotion:
    """Read a DeepMimic motion file into an unprocessed canonical :class:`HumanMotion` (z-up metres).

    Frames with unequal durations are resampled onto the dominant rate (positions linear, rotations slerp).
    """
    from pipeline.motion.process import height_from_legs, resample_times, rest_correction

    path = Path(path)
    frames, loop = load_frames(path)
    skel = load_skeleton()
    pos, rot = forward_kinematics(frames, skel)
    p, r = keypoints(pos, rot, skel)
    c = Y_UP_TO_Z_UP
    pos_w = np.einsum("ij,tkj->tki", c, p)
    rest_frame = np.zeros((1, FRAME_SIZE))
    rest_frame[0, [4, 8, 12, 16, 21, 25, 30, 35, 39]] = 1.0  # identity quaternions (w first)
    rest_p, _ = keypoints(*forward_kinematics(rest_frame, skel), skel)
    rest_w = (rest_p[0] - rest_p[0, 0]) @ c.T
    quat_w = quat_mul(
        matrix_to_quat(np.einsum("ij,tkjl,ml->tkim", c, r, c)), rest_correction(rest_w, CANONICAL_JOINTS)
    )
    fps, times = uniform_rate(frames, path)
    pos_w, quat_w = resample_times(pos_w, quat_w, times, fps)
    leg = float(
        np.linalg.norm(skel.joint("left_knee").origin) + np.linalg.norm(skel.joint("left_ankle").origin)
    )
    box_c, box_size = skel.foot_box
    sole = -(box_c[1] - 0.5 * box_size[1])  # ankle joint height above the box bottom
    t = pos_w.shape[0]
    return HumanMotion(
        fps=fps,
        joint_names=CANONICAL_JOINTS,
        parents=np.array(CANONICAL_PARENTS, dtype=np.int64),
        pos_w=pos_w,
        quat_w=quat_w,
        contacts=np.zeros((t, len(CONTACT_NAMES)), dtype=bool),
        subject_height=height_from_legs(leg),
        source={
            "format": "deepmimic",
            "file": path.name,
            "sha256": sha256_file(path),
            "skeleton": "pybullet humanoid.urdf (globalScaling 0.25)",
            "quat_order": "wxyz",
            "rest_pos": np.round(rest_w, 6).tolist(),
            "loop": loop,
            "cyclic": loop == "wrap",
            "frames_in_file": int(frames.shape[0]),
            "sole_offset_m": {"ankle": float(sole), "toe": float(0.5 * box_size[1])},
        },
    ).validate(path)
