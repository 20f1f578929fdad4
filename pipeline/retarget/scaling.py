"""Scale a human to the robot: per-segment scaling from the rest poses, rebuilt along the tree from the pelvis.

Two kinds of segment:

* chain segments (spine, upper/lower arms and legs): the human's direction, the robot's length. The ratio is
  robot length (keypoints at the zero pose) / human length (median over the clip, robust to marker noise).
* rigid segments (pelvis->hips, torso->shoulders, torso->head, ankle->toes: both ends on one robot body, or
  nearly): the robot's rest offset, turned by the human parent's rotation (``quat_w``, relative to the rest
  pose). Human skeletons disagree wildly here (DeepMimic's hips sit level with the root, CMU's forward of it)
  and the robot cannot change the shape of its pelvis, so copying the human direction would only add error
  the robot can never remove.

The root translation is scaled by the leg-length ratio measured through the scaled chain: the factor that
puts the scaled ankles at the robot's ankle height above the floor during foot contacts (the plain ratio of
leg lengths when the clip has no contacts), so scaled feet land on the floor.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputError
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, HumanMotion

LEG_SEGMENTS = ("left_knee", "left_ankle", "right_knee", "right_ankle")


def canonical_view(
    human: HumanMotion, names: tuple[str, ...] = CANONICAL_JOINTS
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 17, 3) positions and (T, 17, 4) rotations of the canonical keypoints, in canonical order."""
    missing = [n for n in names if n not in human.joint_names]
    if missing:
        raise InputError(human.source.get("file", "<motion>"), f"missing canonical keypoints {missing}")
    idx = [human.index(n) for n in names]
    return human.pos_w[:, idx], human.quat_w[:, idx]


def segment_lengths(pos_w: np.ndarray, parents: tuple[int, ...] = CANONICAL_PARENTS) -> np.ndarray:
    """(J,) median length of each joint's segment to its parent (0 for the root). pos_w: (T, J, 3) or (J, 3)."""
    p = pos_w if pos_w.ndim == 3 else pos_w[None]
    out = np.zeros(p.shape[1])
    for j, par in enumerate(parents):
        if par >= 0:
            out[j] = float(np.median(np.linalg.norm(p[:, j] - p[:, par], axis=-1)))
    return out


def segment_ratios(human_pos_w: np.ndarray, robot_rest_w: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-segment ratios robot/human (J,) (1 at the root) and the leg-length ratio.

    human_pos_w: (T, J, 3) canonical keypoints; robot_rest_w: (J, 3) robot keypoints at its zero pose.
    """
    h = segment_lengths(human_pos_w)
    r = segment_lengths(robot_rest_w)
    ratios = np.ones_like(h)
    for j, par in enumerate(CANONICAL_PARENTS):
        if par >= 0:
            if h[j] < 1e-6:
                raise InputError(
                    "<motion>", f"segment {CANONICAL_JOINTS[par]}->{CANONICAL_JOINTS[j]} has zero length"
                )
            ratios[j] = r[j] / h[j]
    legs = [CANONICAL_JOINTS.index(n) for n in LEG_SEGMENTS]
    leg_ratio = float(r[legs].sum() / h[legs].sum())
    return ratios, leg_ratio


RIGID_SEGMENTS = ("head", "left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_toe", "right_toe")
ANKLES = ("left_ankle", "right_ankle")


def scale_keypoints(
    pos_w: np.ndarray,
    rot_w: np.ndarray,
    ratios: np.ndarray,
    robot_rest_w: np.ndarray,
    contacts: np.ndarray,
    ankle_height: float,
    leg_ratio: float,
) -> tuple[np.ndarray, float]:
    """Scaled keypoints (T, J, 3) and the root scale used.

    pos_w: (T, J, 3) human canonical keypoints; rot_w: (T, J, 3, 3) their rotations relative to the rest pose;
    ratios: (J,) chain-segment ratios; robot_rest_w: (J, 3) robot keypoints at the zero pose;
    contacts: (T, 2) left/right foot contacts; ankle_height: the robot ankle keypoint's height above its sole.
    """
    rigid = {CANONICAL_JOINTS.index(n) for n in RIGID_SEGMENTS}
    rel = np.zeros_like(pos_w)  # keypoints relative to the (unscaled) root
    for j, par in enumerate(CANONICAL_PARENTS):
        if par < 0:
            continue  # parents precede children in CANONICAL_JOINTS
        if j in rigid:
            seg = rot_w[:, par] @ (robot_rest_w[j] - robot_rest_w[par])
        else:
            seg = ratios[j] * (pos_w[:, j] - pos_w[:, par])
        rel[:, j] = rel[:, par] + seg
    root = pos_w[:, 0]
    scale = leg_ratio
    ankles = [CANONICAL_JOINTS.index(n) for n in ANKLES]
    c = contacts.astype(bool)
    if c.any():
        root_z = np.concatenate([root[c[:, f], 2] for f in range(2)])
        rest_z = np.concatenate([rel[c[:, f], ankles[f], 2] for f in range(2)])
        ok = root_z > 1e-3
        if ok.any():
            scale = float(np.median((ankle_height - rest_z[ok]) / root_z[ok]))
    if not 0.2 < scale < 5.0:
        scale = leg_ratio
    out = rel + scale * root[:, None, :]
    return out, scale


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with edge padding; ``sigma`` in frames (0 = unchanged)."""
    if sigma <= 0 or x.shape[0] < 3:
        return x
    radius = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(x[:1], radius, 0), x, np.repeat(x[-1:], radius, 0)], axis=0)
    out = np.zeros_like(x)
    for i, w in enumerate(k):
        out += w * pad[i : i + x.shape[0]]
    return out
