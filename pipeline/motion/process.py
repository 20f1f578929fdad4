"""From a reader's canonical HumanMotion to the processed one every stage uses.

``process`` resamples to the target rate (positions linear, rotations slerp), puts the floor at z = 0, turns
the clip about z so the subject faces +x at frame 0 with the root at x = y = 0, and detects foot contacts.

Foot soles: joint centres sit above the sole. A reader that knows the foot geometry records the heights of the
ankle and toe joints above the sole of a flat-standing foot in ``source["sole_offset_m"]``; otherwise the
anthropometric ratios below are used (Drillis & Contini: ankle joint height 0.039 H; toe joint 0.012 H, about
2 cm). Sole height of a foot = min(ankle z - ankle offset, toe z - toe offset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.geometry import quat_mul, quat_rotate, yaw_quat
from pipeline.motion.human import CANONICAL_PARENTS, HumanMotion

# Drillis & Contini segment-height ratios (fractions of standing height H).
HIP_HEIGHT_RATIO = 0.530
ANKLE_HEIGHT_RATIO = 0.039
TOE_HEIGHT_RATIO = 0.012


def height_from_legs(leg_length: float) -> float:
    """Standing height (m) from the hip->knee->ankle length (m): H = L / (0.530 - 0.039)."""
    return float(leg_length / (HIP_HEIGHT_RATIO - ANKLE_HEIGHT_RATIO))


def leg_length(pos_w: np.ndarray, names: tuple[str, ...]) -> float:
    """Median over frames of the mean left/right thigh + shank length, (T, J, 3) -> metres."""
    i = {n: names.index(n) for n in names}
    total = np.zeros(pos_w.shape[0])
    for side in ("left", "right"):
        hip, knee, ankle = (pos_w[:, i[f"{side}_{p}"]] for p in ("hip", "knee", "ankle"))
        total += np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1)
    return float(np.median(total) / 2.0)


def estimate_height(motion: HumanMotion) -> float:
    return height_from_legs(leg_length(motion.pos_w, motion.joint_names))


# Canonical rest pose: upright, facing +x, legs straight down, arms hanging down, feet pointing forward.
# (keypoint, child keypoint, canonical bone direction); a child of None reuses the parent's correction.
_REST_BONES: dict[str, tuple[str | None, tuple[float, float, float] | None]] = {
    "pelvis": (None, None),
    "torso": ("head", (0.0, 0.0, 1.0)),
    "head": (None, None),
    **{
        f"{s}_{k}": (None if c is None else f"{s}_{c}", d)
        for s in ("left", "right")
        for k, c, d in (
            ("shoulder", "elbow", (0.0, 0.0, -1.0)),
            ("elbow", "wrist", (0.0, 0.0, -1.0)),
            ("wrist", None, None),
            ("hip", "knee", (0.0, 0.0, -1.0)),
            ("knee", "ankle", (0.0, 0.0, -1.0)),
            ("ankle", "toe", (1.0, 0.0, 0.0)),
            ("toe", None, None),
        )
    },
}


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """wxyz quaternion of the smallest rotation taking unit vector ``a`` onto unit vector ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    c = float(a @ b)
    if c < -1.0 + 1e-9:  # opposite: any perpendicular axis
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return np.array([0.0, *(axis / np.linalg.norm(axis))])
    q = np.array([1.0 + c, *np.cross(a, b)])
    return q / np.linalg.norm(q)


def rest_correction(rest_pos: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(J, 4) right-multipliers that re-express rest-relative rotations against the canonical rest pose.

    ``rest_pos`` (J, 3): the source skeleton's rest pose keypoints, z-up, facing +x. For each keypoint the
    correction is the smallest rotation taking its canonical bone direction onto its rest bone direction
    (the foot: horizontal direction only). ``quat_w @ correction`` is then identity when the segment points
    as in the canonical rest pose (upright, arms hanging, legs straight, feet forward, facing +x), whatever
    the source's own rest pose (T-pose, A-pose, splayed legs).
    """
    out = np.tile([1.0, 0.0, 0.0, 0.0], (len(names), 1))
    idx = {n: i for i, n in enumerate(names)}
    for name in names:  # parents come before children in the canonical order
        child, canon = _REST_BONES[name]
        if child is None:
            parent = CANONICAL_PARENTS[idx[name]]
            if name.endswith(("wrist", "toe")):
                out[idx[name]] = out[parent]
            continue
        d = rest_pos[idx[child]] - rest_pos[idx[name]]
        if name.endswith("ankle"):
            d = d * np.array([1.0, 1.0, 0.0])
        if np.linalg.norm(d) < 1e-9:
            continue
        out[idx[name]] = _min_rotation(np.asarray(canon), d)
    return out


def slerp(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical interpolation of (…, 4) wxyz quaternions; ``alpha`` broadcasts against (…, 1)."""
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    s = np.sin(theta)
    small = s < 1e-8
    safe = np.where(small, 1.0, s)
    w0 = np.where(small, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    w1 = np.where(small, alpha, np.sin(alpha * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _interp(pos: np.ndarray, quat: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate (T, J, 3) positions and (T, J, 4) quaternions at fractional frame indices ``x``."""
    i0 = np.clip(np.floor(x).astype(np.int64), 0, max(pos.shape[0] - 2, 0))
    i1 = np.minimum(i0 + 1, pos.shape[0] - 1)
    a = (x - i0).clip(0.0, 1.0)[:, None, None]
    return (1.0 - a) * pos[i0] + a * pos[i1], slerp(quat[i0], quat[i1], a)


def resample_times(
    pos: np.ndarray, quat: np.ndarray, times: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Resample samples taken at increasing ``times`` (T,) onto k / fps, k = 0.. up to the last time."""
    n = int(np.floor(times[-1] * fps + 1e-6)) + 1
    grid = np.arange(n) / fps
    if n == len(times) and np.allclose(times, grid, atol=1e-6):
        return pos, quat
    k = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 1)
    k = np.minimum(k, max(len(times) - 2, 0))
    span = np.where(len(times) > 1, times[np.minimum(k + 1, len(times) - 1)] - times[k], 1.0)
    x = k + np.where(span > 0, (grid - times[k]) / np.where(span > 0, span, 1.0), 0.0)
    return _interp(pos, quat, x)


def resample(motion: HumanMotion, fps: float) -> HumanMotion:
    """Resample to ``fps`` over the same duration (frames at k / fps up to the last source frame)."""
    if abs(motion.fps - fps) < 1e-9 * fps or motion.num_frames < 2:
        return motion.replace(fps=float(fps))
    duration = (motion.num_frames - 1) / motion.fps
    x = np.arange(int(np.floor(duration * fps + 1e-9)) + 1) / fps * motion.fps
    pos, quat = _interp(motion.pos_w, motion.quat_w, x)
    near = np.clip(np.rint(x).astype(np.int64), 0, motion.num_frames - 1)
    return motion.replace(fps=float(fps), pos_w=pos, quat_w=quat, contacts=motion.contacts[near])


def sole_offsets(motion: HumanMotion) -> tuple[float, float]:
    """(ankle, toe) joint heights above the sole of a flat foot, metres."""
    off = motion.source.get("sole_offset_m")
    if off:
        return float(off["ankle"]), float(off["toe"])  # from the reader's foot geometry or estimated
    h = motion.subject_height
    return ANKLE_HEIGHT_RATIO * h, TOE_HEIGHT_RATIO * h


def sole_heights(motion: HumanMotion) -> np.ndarray:
    """(T, 2, 2) sole height under [left, right] x [ankle, toe] joints, metres."""
    ao, to = sole_offsets(motion)
    out = np.empty((motion.num_frames, 2, 2))
    for s, side in enumerate(("left", "right")):
        out[:, s, 0] = motion.pos_w[:, motion.index(f"{side}_ankle"), 2] - ao
        out[:, s, 1] = motion.pos_w[:, motion.index(f"{side}_toe"), 2] - to
    return out


PLANTED_SPEED = (
    0.15  # m/s: a foot point slower than this is taken as (possibly) planted for the floor estimate
)


def point_speeds(motion: HumanMotion) -> np.ndarray:
    """(T, 2, 2) speed (m/s) of [left, right] x [ankle, toe] joints."""
    out = np.zeros((motion.num_frames, 2, 2))
    if motion.num_frames < 2:
        return out
    for s, side in enumerate(("left", "right")):
        for k, part in enumerate(("ankle", "toe")):
            p = motion.pos_w[:, motion.index(f"{side}_{part}")]
            out[:, s, k] = np.linalg.norm(np.gradient(p, 1.0 / motion.fps, axis=0), axis=-1)
    return out


def _planted_level(values: np.ndarray, slow: np.ndarray) -> float:
    """Lower quartile of ``values`` where ``slow`` (planted feet), else the 2nd percentile of all values."""
    v = values[slow]
    return float(np.percentile(v, 25.0) if v.size >= 5 else np.percentile(values, 2.0))


def estimate_sole_offsets(motion: HumanMotion) -> dict[str, float]:
    """Ankle and toe joint heights above the floor when planted, for skeletons without foot geometry.

    Each joint's planted height is the lower quartile of its height while it is slow (both feet pooled),
    which ignores swing phases and brief glitches. The floor is put the anthropometric toe height (0.012 H)
    below the planted toe joint.
    """
    slow = point_speeds(motion) < PLANTED_SPEED
    z = motion.pos_w[..., 2]
    g = []
    for k, part in enumerate(("ankle", "toe")):
        heights = z[:, [motion.index(f"left_{part}"), motion.index(f"right_{part}")]]
        g.append(_planted_level(heights, slow[:, :, k]))
    floor = g[1] - TOE_HEIGHT_RATIO * motion.subject_height
    return {"ankle": max(g[0] - floor, 0.0), "toe": g[1] - floor}


def align_floor(motion: HumanMotion) -> HumanMotion:
    """Shift z so planted feet stand on z = 0.

    The floor is the lower quartile of the sole height of slow feet (a foot's sole height is the lower of its
    ankle and toe sole heights); with too few slow frames, the 2nd percentile of the lowest sole per frame.
    Without foot geometry from the reader (``source["sole_offset_m"]``) the sole offsets are estimated from
    the clip first (:func:`estimate_sole_offsets`) and recorded with ``"estimated": True``.
    """
    m = motion
    if not m.source.get("sole_offset_m"):
        m = m.replace(source={**m.source, "sole_offset_m": {**estimate_sole_offsets(m), "estimated": True}})
    h = sole_heights(m)
    foot_h = h.min(axis=2)
    slow = (point_speeds(m) < PLANTED_SPEED).any(axis=2)
    v = foot_h[slow]
    floor = float(np.percentile(v, 25.0)) if v.size >= 5 else float(np.percentile(foot_h.min(axis=1), 2.0))
    return m.replace(pos_w=m.pos_w - np.array([0.0, 0.0, floor]))


def facing_yaw(motion: HumanMotion, frame: int = 0) -> float:
    """Heading (rad) of the subject at ``frame``: forward = left x up, left from hips and shoulders."""
    p = motion.pos_w[frame]
    left = (p[motion.index("left_hip")] - p[motion.index("right_hip")]) + (
        p[motion.index("left_shoulder")] - p[motion.index("right_shoulder")]
    )
    fwd = np.cross(left, [0.0, 0.0, 1.0])
    return float(np.arctan2(fwd[1], fwd[0]))


def face_forward(motion: HumanMotion) -> HumanMotion:
    """Rotate about z so frame 0 faces +x, and translate so the root is at x = y = 0 at frame 0."""
    q = yaw_quat(-facing_yaw(motion))
    pos = quat_rotate(q, motion.pos_w)
    root = pos[0, motion.index("pelvis")].copy()
    pos = pos - np.array([root[0], root[1], 0.0])
    quat = quat_mul(q, motion.quat_w)
    quat = np.where(quat[..., :1] < 0, -quat, quat)
    return motion.replace(pos_w=pos, quat_w=quat)


@dataclass(frozen=True)
class ContactConfig:
    """Foot-contact thresholds. A foot point (ankle or toe) is "down" when its sole height is below
    ``height_on`` and its speed below ``speed_on``; a foot in contact stays so until every point is above
    ``height_off`` or faster than ``speed_off`` (hysteresis)."""

    height_on: float = 0.04
    height_off: float = 0.06
    speed_on: float = 0.25
    speed_off: float = 0.4

    @classmethod
    def from_params(cls, values: Mapping[str, Any] | None, source: str = "params.yaml") -> ContactConfig:
        """From ``extract.contacts`` (metres, m/s); unknown keys, non-positive values and an "off" threshold
        below its "on" threshold are errors naming ``source``."""
        from dataclasses import fields

        from pipeline.errors import InputError

        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        if set(values) - known:
            raise InputError(source, f"extract.contacts: unknown keys {sorted(set(values) - known)}")
        try:
            cfg = cls(**{k: float(v) for k, v in values.items()})
        except (TypeError, ValueError) as e:
            raise InputError(source, f"extract.contacts: {e}") from None
        if min(cfg.height_on, cfg.speed_on) <= 0.0:
            raise InputError(source, "extract.contacts: thresholds must be positive")
        if cfg.height_off < cfg.height_on or cfg.speed_off < cfg.speed_on:
            raise InputError(source, "extract.contacts: an *_off threshold is below its *_on threshold")
        return cfg


def detect_contacts(motion: HumanMotion, config: ContactConfig | None = None) -> np.ndarray:
    """(T, 2) bool contacts for [left_foot, right_foot]."""
    cfg = config or ContactConfig()
    h = sole_heights(motion)
    speed = point_speeds(motion)
    on = np.asarray(((h < cfg.height_on) & (speed < cfg.speed_on)).any(axis=2))
    keep = np.asarray(((h < cfg.height_off) & (speed < cfg.speed_off)).any(axis=2))
    return hysteresis(on, keep)


def hysteresis(on: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """State machine over axis 0: switch on where ``on``, stay on while ``keep``; (T, …) bool."""
    out = np.zeros_like(on, dtype=bool)
    state = on[0].copy()
    for t in range(on.shape[0]):
        state = on[t] | (state & keep[t])
        out[t] = state
    return out


def process(
    motion: HumanMotion,
    *,
    fps: float | None = None,
    subject_height: float | None = None,
    contacts: ContactConfig | None = None,
) -> HumanMotion:
    """Resample, scale to ``subject_height`` if given, align the floor, face +x, detect contacts."""
    m = motion
    if subject_height is not None:
        k = subject_height / m.subject_height
        m = m.replace(pos_w=m.pos_w * k, subject_height=float(subject_height))
        off = m.source.get("sole_offset_m")
        if off:
            scaled = {n: v * k if n in ("ankle", "toe") else v for n, v in off.items()}
            m = m.replace(source={**m.source, "sole_offset_m": scaled})
    if fps is not None:
        m = resample(m, fps)
    m = align_floor(face_forward(m))
    m = m.replace(contacts=detect_contacts(m, contacts))
    return m.replace(source={**m.source, "processed": True}).validate()
