"""Reward, termination and critic-observation terms of the tracking task: batch functions of numpy arrays.

Reference bodies are compared "relative to the anchor" as in BeyondMimic: the reference is moved so that its
anchor (torso) sits at the robot's anchor in x, y and heading (keeping the reference height), so body terms
measure posture, and the anchor terms (global) measure drift. Tracking rewards are ``w * exp(-err / s^2)``
with ``err`` a mean squared error; the task multiplies the sum by the control period.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.deploy import observation as dob
from pipeline.sim.backend import Backend
from pipeline.sim.config import RewardConfig, TerminationConfig

if TYPE_CHECKING:
    from pipeline.sim.task import TrackingEnv


def quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (rad) between (..., 4) unit quaternions."""
    d = np.abs(np.einsum("...i,...i->...", a, b))
    return 2.0 * np.arccos(np.minimum(d, 1.0))


def gravity_z(q: np.ndarray) -> np.ndarray:
    """z component of the gravity direction in the frame of (..., 4) unit quaternions (-R[2, 2])."""
    return 2.0 * (q[..., 1] ** 2 + q[..., 2] ** 2) - 1.0


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit wxyz -> (..., 3, 3)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.empty((*q.shape[:-1], 3, 3))
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - w * z)
    m[..., 0, 2] = 2 * (x * z + w * y)
    m[..., 1, 0] = 2 * (x * y + w * z)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - w * x)
    m[..., 2, 0] = 2 * (x * z - w * y)
    m[..., 2, 1] = 2 * (y * z + w * x)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def robot_state(be: Backend, anchor: int, pelvis: int, tracked: np.ndarray) -> dict[str, np.ndarray]:
    """The robot quantities the terms need, (E, ...)."""
    return {
        "anchor_pos_w": be.xpos[:, anchor],
        "anchor_quat_w": be.xquat[:, anchor],
        "body_pos_w": be.xpos[:, tracked],
        "body_quat_w": be.xquat[:, tracked],
        "body_lin_vel_w": be.body_lin_vel_w(tracked),
        "body_ang_vel_w": be.body_ang_vel_w(tracked),
        "joint_pos": be.qpos[:, 7:],
        "joint_vel": be.qvel[:, 6:],
        "pelvis_quat_w": be.qpos[:, 3:7],
    }


def heading_error(ref: dict[str, np.ndarray], state: dict[str, np.ndarray], anchor: int) -> np.ndarray:
    """(E,) signed heading of the robot's anchor relative to the reference's (rad; ``anchor`` indexes the
    reference's bodies)."""
    return dob.yaw_of(dob.quat_mul(state["anchor_quat_w"], dob.quat_conj(ref["body_quat_w"][:, anchor])))


def relative_reference(
    ref: dict[str, np.ndarray], state: dict[str, np.ndarray], anchor: int, tracked: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reference tracked-body positions and orientations moved onto the robot's anchor (x, y, heading).
    ``anchor``/``tracked`` index the reference's bodies (TrackingEnv.r_anchor, r_tracked)."""
    ref_anchor_pos = ref["body_pos_w"][:, anchor]
    yaw = heading_error(ref, state, anchor)[:, None]
    c, s = np.cos(yaw), np.sin(yaw)
    d = ref["body_pos_w"][:, tracked] - ref_anchor_pos[:, None, :]
    rel_pos = np.empty_like(d)
    rel_pos[..., 0] = state["anchor_pos_w"][:, None, 0] + c * d[..., 0] - s * d[..., 1]
    rel_pos[..., 1] = state["anchor_pos_w"][:, None, 1] + s * d[..., 0] + c * d[..., 1]
    rel_pos[..., 2] = ref_anchor_pos[:, None, 2] + d[..., 2]
    # (cos(yaw/2), 0, 0, sin(yaw/2)) * body_quat
    b = ref["body_quat_w"][:, tracked]
    ch, sh = np.cos(yaw / 2), np.sin(yaw / 2)
    rel_quat = np.empty_like(b)
    rel_quat[..., 0] = ch * b[..., 0] - sh * b[..., 3]
    rel_quat[..., 1] = ch * b[..., 1] - sh * b[..., 2]
    rel_quat[..., 2] = ch * b[..., 2] + sh * b[..., 1]
    rel_quat[..., 3] = ch * b[..., 3] + sh * b[..., 0]
    return rel_pos, rel_quat


def tracking_errors(
    ref: dict[str, np.ndarray], state: dict[str, np.ndarray], tracked: np.ndarray, rel_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(E,) mean position error of the tracked bodies, m: global, and local (against ``rel_pos``, the reference
    moved onto the robot's anchor by :func:`relative_reference`: posture without the drift of the whole body)."""
    pos = state["body_pos_w"]
    glob = np.linalg.norm(pos - ref["body_pos_w"][:, tracked], axis=-1).mean(1)
    return glob, np.linalg.norm(pos - rel_pos, axis=-1).mean(1)


def drift(ref: dict[str, np.ndarray], state: dict[str, np.ndarray], anchor: int) -> dict[str, np.ndarray]:
    """(E,) where the robot's anchor is off the reference's (``anchor`` indexes the reference's bodies):
    ``heading_err`` (rad) and the planar position error along the reference's heading (pace, ``drift_along_m``)
    and across it (``drift_across_m``), all absolute."""
    heading = dob.yaw_of(ref["body_quat_w"][:, anchor])
    d = state["anchor_pos_w"][:, :2] - ref["body_pos_w"][:, anchor, :2]
    c, s = np.cos(heading), np.sin(heading)
    return {
        "heading_err": np.abs(heading_error(ref, state, anchor)),
        "drift_along_m": np.abs(c * d[:, 0] + s * d[:, 1]),
        "drift_across_m": np.abs(c * d[:, 1] - s * d[:, 0]),
    }


def rewards(
    cfg: RewardConfig,
    state: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    rel: tuple[np.ndarray, np.ndarray],
    env: TrackingEnv,
    actions: np.ndarray,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(E,) summed reward and the (E,) weighted terms by name; ``rel`` is :func:`relative_reference` of the
    tracked bodies."""
    a, tr = env.r_anchor, env.r_tracked
    rel_pos, rel_quat = rel
    err = {
        "anchor_pos": np.sum((ref["body_pos_w"][:, a] - state["anchor_pos_w"]) ** 2, axis=-1),
        "anchor_ori": quat_angle(ref["body_quat_w"][:, a], state["anchor_quat_w"]) ** 2,
        "body_pos": np.sum((rel_pos - state["body_pos_w"]) ** 2, axis=-1).mean(1),
        "body_ori": (quat_angle(rel_quat, state["body_quat_w"]) ** 2).mean(1),
        "body_lin_vel": np.sum((ref["body_lin_vel_w"][:, tr] - state["body_lin_vel_w"]) ** 2, -1).mean(1),
        "body_ang_vel": np.sum((ref["body_ang_vel_w"][:, tr] - state["body_ang_vel_w"]) ** 2, -1).mean(1),
    }
    parts = {k: getattr(cfg, f"w_{k}") * np.exp(-v / getattr(cfg, f"s_{k}") ** 2) for k, v in err.items()}
    parts["action_rate"] = cfg.w_action_rate * np.sum((actions - env.last_action) ** 2, axis=1)
    q = state["joint_pos"]
    over = np.clip(env.soft_lo - q, 0, None) + np.clip(q - env.soft_hi, 0, None)
    parts["joint_limit"] = cfg.w_joint_limit * over.sum(1)
    force = np.linalg.norm(env.backend.cfrc_ext[:, env.undesired, 3:], axis=-1)
    parts["undesired_contacts"] = cfg.w_undesired_contacts * (force > cfg.contact_threshold).sum(1)
    total = np.sum(np.stack(list(parts.values())), axis=0)
    return total, parts


def terminations(
    cfg: TerminationConfig, state: dict[str, np.ndarray], ref: dict[str, np.ndarray], env: TrackingEnv
) -> np.ndarray:
    """(E,) bool: anchor height, anchor tilt, or an end effector's height too far from the reference."""
    a = env.r_anchor
    height = np.abs(ref["body_pos_w"][:, a, 2] - state["anchor_pos_w"][:, 2]) > cfg.anchor_height
    tilt = np.abs(gravity_z(ref["body_quat_w"][:, a]) - gravity_z(state["anchor_quat_w"])) > cfg.anchor_ori
    ee_err = (
        np.abs(ref["body_pos_w"][:, env.r_ee, 2] - env.backend.xpos[:, env.end_effectors, 2])
        > cfg.end_effector_height
    )
    bad = ~np.isfinite(env.backend.qpos).all(1)
    return height | tilt | ee_err.any(1) | bad


def anchor_pos_error(env: TrackingEnv, ref: dict[str, np.ndarray]) -> np.ndarray:
    """(E, 3) the reference anchor's position in the robot anchor's frame."""
    be, a = env.backend, env.anchor
    d = ref["body_pos_w"][:, env.r_anchor] - be.xpos[:, a]
    return np.einsum("ei,eij->ej", d, rotation_matrix(be.xquat[:, a]))


def critic_observation(
    env: TrackingEnv, ref: dict[str, np.ndarray], anchor_pos_err: np.ndarray
) -> np.ndarray:
    """Privileged critic input (E, Dc): command, anchor pose error (``anchor_pos_err``: :func:`anchor_pos_error`,
    and orientation), body poses in the anchor frame, base velocities, proprioception, foot contact forces,
    randomized parameters."""
    be, a = env.backend, env.anchor
    anchor_pos, anchor_quat = be.xpos[:, a], be.xquat[:, a]
    rot_a = rotation_matrix(anchor_quat)  # (E, 3, 3)
    # R_a^T v as v R_a (row vectors), R_a^T R_body
    body_pos_b = (be.xpos[:, env.tracked] - anchor_pos[:, None, :]) @ rot_a
    body_ori_b = rot_a.transpose(0, 2, 1)[:, None] @ rotation_matrix(be.xquat[:, env.tracked])[..., :2]
    pelvis_quat = be.qpos[:, 3:7]
    parts = [
        ref["joint_pos"],
        ref["joint_vel"],
        anchor_pos_err,
        dob.anchor_ori_error(ref["body_quat_w"][:, env.r_anchor], anchor_quat),
        body_pos_b.reshape(env.num_envs, -1),
        body_ori_b.reshape(env.num_envs, -1),
        dob.quat_rotate_inv(pelvis_quat, be.qvel[:, :3]),
        be.qvel[:, 3:6],
        dob.projected_gravity(pelvis_quat),
        be.qpos[:, 7:] - env.default,
        be.qvel[:, 6:],
        env.last_action,
        be.cfrc_ext[:, env.feet, 3:].reshape(env.num_envs, -1) / 100.0,
        env.randomizer.params.critic_vector(float(be.model.opt.timestep)),
    ]
    return np.concatenate(parts, axis=1)
