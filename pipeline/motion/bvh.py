"""BVH reader for any skeleton: parse, forward kinematics, Y-up to Z-up, units, canonical keypoints.

BVH conventions followed here:
- Each joint's ``CHANNELS`` are read in the declared order. Rotation channels (degrees) compose as intrinsic
  rotations in that order: ``Zrotation Yrotation Xrotation`` is ``R = Rz @ Ry @ Rx``. Position channels replace
  the joint's ``OFFSET`` on the axes they name (the root's position, or Mixamo's six-channel joints).
- The rest pose (all channels zero, offsets only) has identity joint rotations. The file's up axis is the one
  closest to the rest pose's pelvis -> head direction (Y for nearly all files); the subject's facing direction
  in the rest pose is found from the skeleton (left hip minus right hip, crossed with up), and
  one fixed rotation maps (rest facing, up) to (+x, +z). Rotations are then re-expressed against the canonical
  rest pose (:func:`pipeline.motion.process.rest_correction`: upright, arms hanging, legs straight, facing +x),
  so a T-pose skeleton and an arms-down skeleton give the same ``quat_w`` for the same posture. The skeleton's
  own rest pose keypoints are kept in ``source["rest_pos"]`` (J, 3), metres, pelvis at the origin.
- Units: the standing height is estimated from the leg length (see :func:`pipeline.motion.process.height_from_legs`)
  and the unit among :data:`UNITS` that gives the most human height is chosen, unless ``unit`` is given.

Joint-name maps (canonical keypoint -> source joint) are built in for CMU (both common BVH conversions) and
Mixamo; other skeletons need a YAML map file ``{canonical_name: source_joint_name}`` for all 17 keypoints.
Names are compared case-insensitively after dropping a namespace prefix (``mixamorig:Hips`` -> ``hips``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.errors import InputError
from pipeline.geometry import matrix_to_quat, quat_mul
from pipeline.io import sha256_file
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, CONTACT_NAMES, HumanMotion
from pipeline.motion.skeletons import load_joint_map, resolve_joint_map

# Length of one file unit in metres. "cmu": the CMU mocap ASF unit, 1/0.45 inch.
UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 2.54 / 0.45 / 100.0}

_POS = {"xposition": 0, "yposition": 1, "zposition": 2}
_ROT = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}


@dataclass(frozen=True)
class BvhSkeleton:
    """A BVH hierarchy. End sites are kept as extra joints without channels (``is_end`` True).

    Attributes:
        names: (J,) joint names (end sites are named ``<parent>_end``).
        parents: (J,) parent index, -1 for the root.
        offsets: (J, 3) offsets from the parent in file units, Y-up.
        channels: per joint, the declared channel names (lower case), empty for end sites.
        is_end: (J,) True for end sites.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    is_end: np.ndarray

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)


@dataclass(frozen=True)
class BvhData:
    skeleton: BvhSkeleton
    frame_time: float
    values: np.ndarray  # (T, C) channel values in file order


class _Tokens:
    def __init__(self, text: str, origin: str) -> None:
        self.toks = re.findall(r"[{}]|[^\s{}]+", text)
        self.i = 0
        self.origin = origin

    def next(self, what: str) -> str:
        if self.i >= len(self.toks):
            raise InputError(self.origin, f"truncated BVH: file ends where {what} was expected")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, word: str) -> None:
        tok = self.next(f"'{word}'")
        if tok.upper() != word.upper():
            raise InputError(self.origin, f"malformed BVH: expected '{word}', found '{tok}'")

    def number(self, what: str) -> float:
        tok = self.next(what)
        try:
            v = float(tok)
        except ValueError:
            raise InputError(self.origin, f"malformed BVH: {what} is not a number: '{tok}'") from None
        if not np.isfinite(v):
            raise InputError(self.origin, f"BVH {what} is not finite: '{tok}'")
        return v


def parse_bvh(text: str, origin: str = "<bvh>") -> BvhData:
    """Parse BVH text. Raises :class:`InputError` naming ``origin`` on any malformed or truncated input."""
    head, sep, motion = re.split(r"(\bMOTION\b)", text, maxsplit=1) if "MOTION" in text else (text, "", "")
    tk = _Tokens(head, origin)
    tk.expect("HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    is_end: list[bool] = []

    def parse_joint(name: str, parent: int, end: bool) -> None:
        idx = len(names)
        names.append(name)
        parents.append(parent)
        is_end.append(end)
        tk.expect("{")
        tk.expect("OFFSET")
        offsets.append([tk.number(f"OFFSET of '{name}'") for _ in range(3)])
        chans: tuple[str, ...] = ()
        if not end:
            tk.expect("CHANNELS")
            n_tok = tk.next(f"channel count of '{name}'")
            if not n_tok.isdigit():
                raise InputError(origin, f"malformed BVH: channel count of '{name}' is '{n_tok}'")
            chans = tuple(tk.next(f"channel of '{name}'").lower() for _ in range(int(n_tok)))
            for c in chans:
                if c not in _POS and c not in _ROT:
                    raise InputError(origin, f"malformed BVH: unknown channel '{c}' on joint '{name}'")
            if len(set(chans)) != len(chans):
                raise InputError(origin, f"malformed BVH: repeated channel on joint '{name}'")
        channels.append(chans)
        while True:
            tok = tk.next(f"'}}' closing '{name}'")
            key = tok.upper()
            if key == "}":
                return
            if key == "JOINT":
                parse_joint(tk.next("joint name"), idx, False)
            elif key == "END":
                site = tk.next("'Site'")
                if site.upper() != "SITE":
                    raise InputError(origin, f"malformed BVH: expected 'End Site', found 'End {site}'")
                parse_joint(f"{name}_end", idx, True)
            else:
                raise InputError(origin, f"malformed BVH: unexpected '{tok}' inside joint '{name}'")

    tk.expect("ROOT")
    parse_joint(tk.next("root name"), -1, False)
    if tk.i != len(tk.toks):
        raise InputError(origin, f"malformed BVH: unexpected '{tk.toks[tk.i]}' after the root joint")
    if not sep:
        raise InputError(origin, "truncated BVH: no MOTION section")
    skel = BvhSkeleton(
        names=tuple(names),
        parents=np.array(parents, dtype=np.int64),
        offsets=np.array(offsets, dtype=np.float64),
        channels=tuple(channels),
        is_end=np.array(is_end, dtype=bool),
    )
    frame_time, values = _parse_motion(motion, skel.num_channels, origin)
    return BvhData(skel, frame_time, values)


def _parse_motion(text: str, n_chan: int, origin: str) -> tuple[float, np.ndarray]:
    lines = text.strip().splitlines()
    m = re.match(r"\s*Frames\s*:\s*(\S+)\s*$", lines[0]) if lines else None
    if not m or not m.group(1).isdigit():
        raise InputError(origin, "malformed BVH: MOTION must be followed by 'Frames: N'")
    n_frames = int(m.group(1))
    m = re.match(r"\s*Frame\s+Time\s*:\s*(\S+)\s*$", lines[1]) if len(lines) > 1 else None
    try:
        frame_time = float(m.group(1)) if m else float("nan")
    except ValueError:
        frame_time = float("nan")
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise InputError(origin, "malformed BVH: missing or invalid 'Frame Time: seconds'")
    if n_frames == 0:
        raise InputError(origin, "the clip has zero frames")
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    flat = [v for row in rows for v in row]
    if len(flat) == n_frames * n_chan and any(len(row) != n_chan for row in rows):
        rows = [flat[k * n_chan : (k + 1) * n_chan] for k in range(n_frames)]  # frames wrapped over lines
    for k, row in enumerate(rows):
        if len(row) != n_chan:
            raise InputError(
                origin, f"frame {k} has {len(row)} values but the hierarchy declares {n_chan} channels"
            )
    if len(rows) < n_frames:
        raise InputError(origin, f"truncated BVH: header says {n_frames} frames, found {len(rows)}")
    if len(rows) > n_frames:
        raise InputError(origin, f"header says {n_frames} frames but {len(rows)} frame lines follow")
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError as e:
        raise InputError(origin, f"malformed BVH: a frame value is not a number ({e})") from None
    bad = ~np.isfinite(values)
    if bad.any():
        f, c = np.argwhere(bad)[0]
        raise InputError(origin, f"NaN or infinite value at frame {f}, channel {c}")
    return frame_time, values


def forward_kinematics(data: BvhData) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions (T, J, 3) in file units and rotation matrices (T, J, 3, 3), file frame (Y-up)."""
    skel, vals = data.skeleton, data.values
    t, j = vals.shape[0], len(skel.names)
    pos = np.zeros((t, j, 3))
    rot = np.zeros((t, j, 3, 3))
    col = 0
    for k in range(j):
        chans = skel.channels[k]
        local_t = np.broadcast_to(skel.offsets[k], (t, 3)).copy()
        order = ""
        angles = []
        for c in chans:
            if c in _POS:
                local_t[:, _POS[c]] = vals[:, col]
            else:
                order += _ROT[c]
                angles.append(vals[:, col])
            col += 1
        if order:
            local_r = Rotation.from_euler(order, np.stack(angles, axis=1), degrees=True).as_matrix()
        else:
            local_r = np.broadcast_to(np.eye(3), (t, 3, 3))
        p = skel.parents[k]
        if p < 0:
            pos[:, k] = local_t
            rot[:, k] = local_r
        else:
            pos[:, k] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], local_t)
            rot[:, k] = rot[:, p] @ local_r
    return pos, rot


def rest_positions(skel: BvhSkeleton) -> np.ndarray:
    """(J, 3) joint positions of the rest pose (offsets only), file units."""
    pos = np.zeros((len(skel.names), 3))
    for k, p in enumerate(skel.parents):
        pos[k] = skel.offsets[k] + (pos[p] if p >= 0 else 0.0)
    return pos


AXES = ("x", "y", "z")


def up_axis(rest: np.ndarray, pelvis: int, head: int) -> np.ndarray:
    """The file axis (±x, ±y, ±z) closest to the rest pose's pelvis -> head direction: Y-up for nearly all
    BVH files, Z-up for some exporters."""
    d = rest[head] - rest[pelvis]
    k = int(np.argmax(np.abs(d)))
    up = np.zeros(3)
    up[k] = np.sign(d[k]) or 1.0
    return up


def file_to_world(rest: np.ndarray, idx: dict[str, int], origin: str) -> np.ndarray:
    """(3, 3) rotation taking the file frame to z-up with the rest pose facing +x (rows: world axes)."""
    up = up_axis(rest, idx["pelvis"], idx["head"])
    left = rest[idx["left_hip"]] - rest[idx["right_hip"]]
    left = left - up * (left @ up)
    if np.linalg.norm(left) < 1e-9:
        raise InputError(
            origin, "cannot find the facing direction: left and right hips coincide in the rest pose"
        )
    left /= np.linalg.norm(left)
    forward = np.cross(left, up)
    # rows: world x (forward), world y (left), world z (up), expressed in file coordinates
    return np.stack([forward, left, up])


def detect_unit(leg_length: float) -> str:
    """The unit in :data:`UNITS` that makes the standing height closest to 1.7 m (in ratio)."""
    from pipeline.motion.process import height_from_legs

    best = min(UNITS, key=lambda u: abs(np.log(height_from_legs(leg_length * UNITS[u]) / 1.7)))
    return best


def read_bvh(
    path: str | Path,
    *,
    joint_map: str | Path | dict[str, str] | None = None,
    unit: str | float | None = None,
) -> HumanMotion:
    """Read a BVH file into an unprocessed canonical :class:`HumanMotion` (z-up metres, not floor-aligned).

    Args:
        path: the .bvh file.
        joint_map: a YAML file or dict {canonical keypoint: source joint}; default: detect CMU / Mixamo.
        unit: a name in :data:`UNITS` or metres per file unit; default: detected from the leg length.
    """
    path = Path(path)
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise InputError(origin, f"cannot read: {e.strerror}") from None
    if not text.strip():
        raise InputError(origin, "empty file")
    data = parse_bvh(text, origin)
    skel = data.skeleton
    mapping = load_joint_map(joint_map, origin) if joint_map is not None else None
    skeleton_name, idx = resolve_joint_map(skel.names, mapping, origin)
    rest = rest_positions(skel)
    leg = 0.5 * sum(
        float(np.linalg.norm(rest[idx[a]] - rest[idx[b]]))
        for a, b in (
            ("left_hip", "left_knee"),
            ("left_knee", "left_ankle"),
            ("right_hip", "right_knee"),
            ("right_knee", "right_ankle"),
        )
    )
    if leg <= 0:
        raise InputError(origin, "the skeleton's legs have zero length")
    if unit is None:
        unit_name = detect_unit(leg)
        scale = UNITS[unit_name]
    elif isinstance(unit, str):
        if unit not in UNITS:
            raise InputError(origin, f"unknown unit '{unit}'; use one of {sorted(UNITS)} or metres per unit")
        unit_name, scale = unit, UNITS[unit]
    else:
        unit_name, scale = f"{float(unit)} m", float(unit)
    pos, rot = forward_kinematics(data)
    c = file_to_world(rest, idx, origin)
    sel = [idx[n] for n in CANONICAL_JOINTS]
    pos_w = np.einsum("ij,tkj->tki", c, pos[:, sel]) * scale
    rot_w = np.einsum("ij,tkjl,ml->tkim", c, rot[:, sel], c)
    from pipeline.motion.process import height_from_legs, rest_correction

    rest_w = (rest[sel] - rest[sel][0]) @ c.T * scale
    quat_w = quat_mul(matrix_to_quat(rot_w), rest_correction(rest_w, CANONICAL_JOINTS))

    t = data.values.shape[0]
    fps = 1.0 / data.frame_time
    if abs(fps - round(fps)) < 1e-4 * fps:  # "Frame Time: .0083333" means 120 fps
        fps = float(round(fps))
    return HumanMotion(
        fps=fps,
        joint_names=CANONICAL_JOINTS,
        parents=np.array(CANONICAL_PARENTS, dtype=np.int64),
        pos_w=pos_w,
        quat_w=quat_w,
        contacts=np.zeros((t, len(CONTACT_NAMES)), dtype=bool),
        subject_height=height_from_legs(leg * scale),
        source={
            "format": "bvh",
            "file": path.name,
            "sha256": sha256_file(path),
            "skeleton": skeleton_name,
            "unit": unit_name,
            "up_axis": ("+" if c[2].sum() > 0 else "-") + AXES[int(np.argmax(np.abs(c[2])))],
            "metres_per_unit": scale,
            "joints": {n: skel.names[idx[n]] for n in CANONICAL_JOINTS},
            "rest_pos": np.round(rest_w, 6).tolist(),
            "frames_in_file": t,
            "fps_in_file": 1.0 / data.frame_time,
        },
    ).validate(origin)
