"""retarget(): a HumanMotion to a RobotMotion plus its quality report (pure: no files, no printing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.geometry import quat_to_matrix
from pipeline.motion.human import CANONICAL_JOINTS, CONTACT_NAMES, HumanMotion
from pipeline.motion.process import resample
from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.ik import FrameSolver, plant_modes
from pipeline.retarget.kinematics import RobotKinematics, robot_kinematics
from pipeline.retarget.quality import quality
from pipeline.retarget.scaling import canonical_view, gaussian_smooth, scale_keypoints, segment_ratios
from pipeline.robot.model import qpos_pin_to_mj
from pipeline.robot.motion import RobotMotion

METHOD = "per-segment scaling + differential-IK QP (pinocchio, daqp/proxsuite)"


def _contacts(human: HumanMotion) -> np.ndarray:
    """(T, 2) bool contacts of (left_foot, right_foot), whatever the column order of the clip."""
    cols = []
    for name in CONTACT_NAMES:
        if name not in human.contact_names:
            raise InputError(human.source.get("file", "<motion>"), f"no '{name}' contact column")
        cols.append(human.contacts[:, human.contact_names.index(name)].astype(bool))
    return np.stack(cols, axis=1)


def targets(
    human: HumanMotion, kin: RobotKinematics, cfg: RetargetConfig, contacts: np.ndarray
) -> dict[str, Any]:
    """Scaled keypoint targets (T, K, 3) in the robot's keypoint order, rotation targets (T, O, 3, 3), ratios."""
    pos, quat = canonical_view(human)
    canon_of_kin = [CANONICAL_JOINTS.index(n) for n in kin.keypoint_names]
    kin_of_canon = [kin.keypoint_names.index(n) for n in CANONICAL_JOINTS]
    rest = kin.rest_pos_w[kin_of_canon]
    ratios, leg_ratio = segment_ratios(pos, rest)
    rel = quat_to_matrix(quat)  # (T, J, 3, 3)
    scaled, root_scale = scale_keypoints(pos, rel, ratios, rest, contacts, kin.ankle_height, leg_ratio)
    scaled = gaussian_smooth(scaled, cfg.smoothing_sigma)
    rot_idx = np.flatnonzero(kin.kp_rot_weight * cfg.orientation_weight > 0)
    rot = rel[:, [canon_of_kin[i] for i in rot_idx]] @ kin.kp_rot_rest_w[rot_idx]
    return {
        "pos_w": scaled[:, canon_of_kin],
        "rot_w": rot,
        "ratios": {n: round(float(r), 4) for n, r in zip(CANONICAL_JOINTS, ratios, strict=True)},
        "leg_ratio": leg_ratio,
        "root_scale": root_scale,
        "pelvis_rot_w": rel[:, CANONICAL_JOINTS.index("pelvis")],
        "ankle_rot_w": rel[:, [CANONICAL_JOINTS.index(n) for n in ("left_ankle", "right_ankle")]]
        @ kin.kp_rot_rest_w[[kin.keypoint_names.index(n) for n in ("left_ankle", "right_ankle")]],
    }


def retarget(
    human: HumanMotion,
    robot: str,
    cfg: RetargetConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[RobotMotion, dict[str, Any]]:
    """Retarget ``human`` to ``robot``. Returns the RobotMotion (at ``cfg.fps``) and its quality dict."""
    import pinocchio as pin

    human.validate()
    kin = robot_kinematics(robot)
    human = resample(human, cfg.fps)
    contacts = _contacts(human)
    tg = targets(human, kin, cfg, contacts)
    n = human.num_frames
    heel_to_toe = kin.sole_rest_b[2] - kin.sole_rest_b[0]
    plant = plant_modes(contacts, tg["ankle_rot_w"], heel_to_toe, cfg.plant_roll)
    solver = FrameSolver(kin, cfg)
    q = kin.q_default.copy()
    pelvis = kin.keypoint_names.index("pelvis")
    q[:3] = tg["pos_w"][0, pelvis]
    q[3:7] = pin.Quaternion(tg["pelvis_rot_w"][0]).coeffs()  # xyzw
    out = np.empty((n, kin.nq))
    model = kin.model
    for t in range(n):
        # Start from the previous frame moved on by its velocity (constant-velocity prediction).
        q_init = (
            pin.integrate(model, q, pin.difference(model, out[t - 2], q))
            if t >= 2 and cfg.extrapolate
            else None
        )
        q = solver.solve(q, tg["pos_w"][t], tg["rot_w"][t], plant[t], q_init=q_init, first=t == 0)
        out[t] = q
        if progress is not None:
            progress(t + 1, n)
    source = {
        "human_sha256": human.source.get("input_sha256") or human.source.get("sha256", ""),
        "clip_sha256": human.source.get("sha256", ""),
        "human_file": human.source.get("file", ""),
        "method": METHOD,
        "cyclic": bool(human.source.get("cyclic", False)),  # the training reference loops cyclic clips
        "params": cfg.to_dict(),
        "segment_ratios": tg["ratios"],
        "leg_ratio": round(tg["leg_ratio"], 4),
        "root_scale": round(tg["root_scale"], 4),
        "qp_failures": solver.stats["qp_failures"],
    }
    motion = RobotMotion.from_qpos(
        robot,
        qpos_pin_to_mj(out),
        cfg.fps,
        contacts=contacts,
        keypoint_names=kin.keypoint_names,
        keypoint_pos_w=tg["pos_w"],
        source=source,
    )
    return motion, quality(motion)
