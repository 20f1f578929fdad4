"""Quality report of a retargeted motion, measured independently of the optimiser.

Everything here uses MuJoCo (forward kinematics and its own collision detection on the robot's collision
geoms), not the pinocchio kinematics or the capsule distances the IK used, so a bug in the IK's model of the
robot shows up here instead of being graded by itself.
"""

from __future__ import annotations

import mujoco
import numpy as np

from pipeline.robot.model import joint_limits, mujoco_model
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot

QUALITY_KEYS = (
    "keypoint_err_mean_mm",
    "keypoint_err_max_mm",
    "foot_skate_mean_mm_s",
    "floor_penetration_max_mm",
    "joint_limit_violations",
    "velocity_limit_ratio_max",
    "self_collisions",
    "self_collision_depth_max_mm",
    "jerk_mean",
    "frames",
    "fps",
)
LIMIT_TOLERANCE = 1e-9  # rad
ROLL = 0.002  # m: a foot whose heel and toe heights differ by more than this rolls on the lower end


def quality(motion: RobotMotion) -> dict[str, float | int]:
    """The quality dict (keys :data:`QUALITY_KEYS`) of a RobotMotion carrying its scaled keypoints.

    keypoint errors: robot keypoints (MuJoCo FK, robot.yaml body + offset) vs ``motion.keypoint_pos_w``.
    foot skate: mean horizontal speed of each foot's contact point (robot.yaml foot_points: the lower of heel
        and toe when the foot rolls, the faster of the two when it is flat) over consecutive frames in contact.
    floor penetration: deepest MuJoCo contact between any robot geom and the floor.
    joint limit violations: (frame, joint) pairs outside the model's ranges.
    velocity_limit_ratio_max: max |dof_vel| / robot.yaml velocity limit.
    self collisions: frames with any MuJoCo contact of positive depth between two robot geoms.
    jerk_mean: mean |d^3 q / dt^3| over frames and joints, rad/s^3.
    """
    spec = load_robot(motion.robot)
    model = mujoco_model(motion.robot)
    data = mujoco.MjData(model)
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    by_name = {k.name: k for k in spec.keypoints}
    names = [n for n in motion.keypoint_names if n in by_name]
    kp_body = np.array([model.body(by_name[n].body).id for n in names], dtype=np.int64)
    kp_off = np.array([by_name[n].offset for n in names]).reshape(-1, 3)
    kp_idx = [motion.keypoint_names.index(n) for n in names]
    feet = np.array([model.body(f).id for f in spec.feet], dtype=np.int64)
    heel_toe = np.stack([np.asarray(spec.foot_points["heel"]), np.asarray(spec.foot_points["toe"])])

    t = motion.num_frames
    qpos = motion.qpos
    kp = np.zeros((t, len(names), 3))
    soles = np.zeros((t, 2, 2, 3))  # (T, foot, heel/toe, xyz)
    floor_pen = 0.0
    self_frames = 0
    self_depth = 0.0
    for i in range(t):
        data.qpos[:] = qpos[i]
        mujoco.mj_kinematics(model, data)
        xmat = data.xmat.reshape(-1, 3, 3)
        kp[i] = data.xpos[kp_body] + np.einsum("kij,kj->ki", xmat[kp_body], kp_off)
        soles[i] = data.xpos[feet][:, None] + np.einsum("fij,pj->fpi", xmat[feet], heel_toe)
        mujoco.mj_collision(model, data)
        n = data.ncon
        if n:
            dist = data.contact.dist[:n]
            geom = data.contact.geom[:n]
            on_floor = (geom == floor).any(axis=1)
            if on_floor.any():
                floor_pen = max(floor_pen, float(-dist[on_floor].min()))
            pen = ~on_floor & (dist < 0)
            if pen.any():
                self_frames += 1
                self_depth = max(self_depth, float(-dist[pen].min()))

    if len(names) and motion.keypoint_pos_w.shape[1]:
        err = np.linalg.norm(kp - motion.keypoint_pos_w[:, kp_idx], axis=-1)
        err_mean, err_max = float(err.mean()), float(err.max())
    else:
        err_mean = err_max = float("nan")
    c = motion.contacts.astype(bool)
    both = c[1:] & c[:-1]
    # Speed of the contact point: the heel or the toe when it is clearly the lower end (a rolling foot),
    # else the faster of the two (a flat foot must not slide nor pivot).
    speed = np.linalg.norm(np.diff(soles[..., :2], axis=0), axis=-1) * motion.fps  # (T-1, 2, 2)
    dz = soles[1:, :, 1, 2] - soles[1:, :, 0, 2]  # toe minus heel height
    contact_speed = np.where(
        dz < -ROLL, speed[..., 1], np.where(dz > ROLL, speed[..., 0], speed.max(axis=-1))
    )
    skate = float(contact_speed[both].mean()) if both.any() else 0.0
    lo, hi = joint_limits(motion.robot)
    q = motion.dof_pos
    violations = int(((q < lo - LIMIT_TOLERANCE) | (q > hi + LIMIT_TOLERANCE)).sum())
    vel_ratio = float(np.max(np.abs(motion.dof_vel) / spec.velocity_limit)) if t > 1 else 0.0
    jerk = float(np.abs(np.diff(q, n=3, axis=0)).mean() * motion.fps**3) if t > 3 else 0.0
    return {
        "keypoint_err_mean_mm": round(err_mean * 1e3, 3),
        "keypoint_err_max_mm": round(err_max * 1e3, 3),
        "foot_skate_mean_mm_s": round(skate * 1e3, 3),
        "floor_penetration_max_mm": round(max(floor_pen, 0.0) * 1e3, 3),
        "joint_limit_violations": violations,
        "velocity_limit_ratio_max": round(vel_ratio, 4),
        "self_collisions": self_frames,
        "self_collision_depth_max_mm": round(self_depth * 1e3, 3),
        "jerk_mean": round(jerk, 3),
        "frames": t,
        "fps": float(motion.fps),
    }


# The quality gate (issue bars): a clip that fails it is flagged and, by default, kept out of training.
GATE = {
    "joint_limit_violations": 0,
    "self_collisions": 0,
    "floor_penetration_max_mm": 5.0,
    "foot_skate_mean_mm_s": 20.0,
    "keypoint_err_mean_mm": 50.0,
}


def gate_failures(report: dict) -> list[str]:
    """The gate bars a quality report misses, as readable strings (empty: the clip passes)."""
    return [
        f"{key} {report[key]} > {bar}"
        for key, bar in GATE.items()
        if key in report and float(report[key]) > bar
    ]
