"""The actor observation: one definition shared by training (pipeline/sim) and the deploy runtime.

Pure numpy, batch-first: every function takes arrays with a leading batch axis ``(B, ...)`` (B = 1 on the
robot) and needs neither torch nor a simulator. The layout below is what ``deploy.json`` carries under
``observation.terms`` (name, size, scale); the observation is the concatenation of the terms in this order,
each multiplied by its scale::

    ref_joint_pos        N   reference joint positions at the current phase, rad (absolute, not minus default)
    ref_joint_vel        N   reference joint velocities, rad/s
    anchor_ori_error     6   reference anchor (torso) orientation expressed in the robot's anchor frame,
                             R = R_anchor^T R_ref_anchor, as its first two columns, row-major:
                             [R00, R01, R10, R11, R20, R21]
    base_ang_vel_b       3   pelvis (IMU) angular velocity in the pelvis frame, rad/s
    projected_gravity_b  3   unit gravity direction (0, 0, -1)_world in the pelvis frame
    joint_pos_rel        N   joint positions minus the default pose, rad
    joint_vel            N   joint velocities, rad/s
    last_action          N   the policy's previous raw output (targets = default + action_scale * action)

The anchor position error is *not* here: it needs a state estimator, so it goes to the critic only. The
anchor orientation comes from the pelvis IMU orientation and the waist joints through :class:`AnchorChain`
(forward kinematics of the waist, a few quaternion products). Yaw: training starts every episode with the
robot's yaw equal to the reference's, so on the robot the runtime must express the reference orientation in
the IMU's world frame, i.e. rotate the reference anchor quaternions by ``yaw(imu at start) - yaw(ref at
start)`` once when the motion starts (``align_yaw``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.geometry import quat_conj, quat_mul

__all__ = [
    "GRAVITY_W", "AnchorChain", "ObsTermSpec", "actor_layout", "actor_observation", "align_yaw",
    "anchor_chain_from_model", "anchor_ori_error", "axis_angle_quat", "layout_json", "layout_size",
    "projected_gravity", "quat_conj", "quat_mul", "quat_rotate_inv", "quat_to_matrix", "yaw_alignment", "yaw_of",
]  # fmt: skip

GRAVITY_W = np.array([0.0, 0.0, -1.0])


@dataclass(frozen=True)
class ObsTermSpec:
    name: str
    size: int
    scale: float = 1.0


def actor_layout(num_joints: int) -> tuple[ObsTermSpec, ...]:
    """The actor terms in order (see the module docstring)."""
    n = num_joints
    return (
        ObsTermSpec("ref_joint_pos", n),
        ObsTermSpec("ref_joint_vel", n),
        ObsTermSpec("anchor_ori_error", 6),
        ObsTermSpec("base_ang_vel_b", 3),
        ObsTermSpec("projected_gravity_b", 3),
        ObsTermSpec("joint_pos_rel", n),
        ObsTermSpec("joint_vel", n),
        ObsTermSpec("last_action", n),
    )


def layout_size(layout: Sequence[ObsTermSpec]) -> int:
    return sum(t.size for t in layout)


def layout_json(layout: Sequence[ObsTermSpec]) -> list[dict[str, object]]:
    """As deploy.json's ``observation.terms``."""
    return [{"name": t.name, "size": t.size, "scale": t.scale} for t in layout]


# ---- quaternion helpers (wxyz, batch over leading axes) -------------------------------------------------

# quat_mul (Hamilton product, broadcasting) and quat_conj are pipeline.geometry's (numpy only, no scipy import)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)


def quat_rotate_inv(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) world vectors into the frame of (..., 4) quaternions: R(q)^T v."""
    w = q[..., :1]
    u = -q[..., 1:]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) wxyz -> (..., 3, 3); quaternions need not be unit."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def axis_angle_quat(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(3,) unit axis, (B,) angles -> (B, 4)."""
    half = 0.5 * np.asarray(angle)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def yaw_of(q: np.ndarray) -> np.ndarray:
    """Heading angle (rad) of (..., 4) quaternions."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def yaw_alignment(robot_quat_w: np.ndarray, ref_quat_at_start: np.ndarray) -> np.ndarray:
    """(..., 4) the rotation about z that :func:`align_yaw` applies (on the left) to the reference."""
    dyaw = yaw_of(robot_quat_w) - yaw_of(ref_quat_at_start)
    return np.stack([np.cos(dyaw / 2), np.zeros_like(dyaw), np.zeros_like(dyaw), np.sin(dyaw / 2)], -1)


def align_yaw(ref_quat_w: np.ndarray, robot_quat_w: np.ndarray, ref_quat_at_start: np.ndarray) -> np.ndarray:
    """Rotate reference quaternions (..., 4) about z so the reference start heading equals the robot's."""
    return quat_mul(yaw_alignment(robot_quat_w, ref_quat_at_start), ref_quat_w)


# ---- anchor kinematics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorChain:
    """Orientation of the anchor body from the pelvis orientation and a chain of hinge joints.

    q_anchor = q_pelvis * prod_k (body_quat[k] * axis_angle(axis[k], joint_pos[joint_index[k]]))

    joint_index: (K,) indices into the joint vector; body_quat: (K, 4) each joint body's fixed rotation
    relative to its parent (wxyz); axis: (K, 3) joint axes in the joint body frame; tail_quat: (4,) the fixed
    rotation from the last joint body to the anchor (identity when the anchor carries the last joint).
    """

    joint_index: tuple[int, ...]
    body_quat: np.ndarray
    axis: np.ndarray
    tail_quat: np.ndarray

    def anchor_quat(self, pelvis_quat_w: np.ndarray, joint_pos: np.ndarray) -> np.ndarray:
        """(B, 4) pelvis orientation, (B, N) joint positions -> (B, 4) anchor orientation, wxyz."""
        q = np.asarray(pelvis_quat_w, dtype=np.float64)
        for k, j in enumerate(self.joint_index):
            q = quat_mul(q, self.body_quat[k])
            q = quat_mul(q, axis_angle_quat(self.axis[k], joint_pos[..., j]))
        return quat_mul(q, self.tail_quat)

    def to_json(self) -> dict[str, object]:
        return {
            "joint_index": list(self.joint_index),
            "body_quat": self.body_quat.tolist(),
            "axis": self.axis.tolist(),
            "tail_quat": self.tail_quat.tolist(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> AnchorChain:
        return cls(
            joint_index=tuple(int(i) for i in raw["joint_index"]),  # type: ignore[attr-defined]
            body_quat=np.asarray(raw["body_quat"], dtype=np.float64).reshape(-1, 4),
            axis=np.asarray(raw["axis"], dtype=np.float64).reshape(-1, 3),
            tail_quat=np.asarray(raw["tail_quat"], dtype=np.float64).reshape(4),
        )


def anchor_chain_from_model(model, pelvis: str, anchor: str) -> AnchorChain:  # model: mujoco.MjModel
    """Read the hinge chain pelvis -> anchor from a compiled MuJoCo model (hinge joints only)."""
    import mujoco

    pid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, pelvis)
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, anchor)
    if pid < 0 or bid < 0:
        raise ValueError(f"bodies '{pelvis}' or '{anchor}' not in the model")
    chain = []
    b = bid
    while b != pid:
        if b == 0:
            raise ValueError(f"'{anchor}' is not a descendant of '{pelvis}'")
        chain.append(b)
        b = int(model.body_parentid[b])
    chain.reverse()
    hinge_rank = {
        j: k
        for k, j in enumerate(
            i for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE
        )
    }
    idx, bq, ax = [], [], []
    pending = np.array([1.0, 0.0, 0.0, 0.0])
    for b in chain:
        pending = quat_mul(pending, model.body_quat[b].copy())
        for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
            idx.append(hinge_rank[j])
            bq.append(pending)
            ax.append(model.jnt_axis[j].copy())
            pending = np.array([1.0, 0.0, 0.0, 0.0])
    return AnchorChain(tuple(idx), np.array(bq).reshape(-1, 4), np.array(ax).reshape(-1, 3), pending)


# ---- observation terms -------------------------------------------------------------------------------------


def projected_gravity(base_quat_w: np.ndarray) -> np.ndarray:
    """(B, 4) -> (B, 3) gravity direction in the base frame."""
    return quat_rotate_inv(base_quat_w, np.broadcast_to(GRAVITY_W, (*base_quat_w.shape[:-1], 3)))


def anchor_ori_error(ref_anchor_quat_w: np.ndarray, anchor_quat_w: np.ndarray) -> np.ndarray:
    """(B, 4), (B, 4) -> (B, 6): first two columns of R_anchor^T R_ref, row-major."""
    rel = quat_mul(quat_conj(anchor_quat_w), ref_anchor_quat_w)
    return quat_to_matrix(rel)[..., :, :2].reshape(*rel.shape[:-1], 6)


def actor_observation(
    *,
    ref_joint_pos: np.ndarray,
    ref_joint_vel: np.ndarray,
    ref_anchor_quat_w: np.ndarray,
    anchor_quat_w: np.ndarray,
    base_quat_w: np.ndarray,
    base_ang_vel_b: np.ndarray,
    joint_pos: np.ndarray,
    joint_vel: np.ndarray,
    default_joint_pos: np.ndarray,
    last_action: np.ndarray,
    layout: Sequence[ObsTermSpec] | None = None,
) -> np.ndarray:
    """The actor observation (B, D) float32 in the layout order (all inputs batch-first, float64 fine)."""
    n = joint_pos.shape[-1]
    layout = actor_layout(n) if layout is None else layout
    terms = {
        "ref_joint_pos": ref_joint_pos,
        "ref_joint_vel": ref_joint_vel,
        "anchor_ori_error": anchor_ori_error(ref_anchor_quat_w, anchor_quat_w),
        "base_ang_vel_b": base_ang_vel_b,
        "projected_gravity_b": projected_gravity(base_quat_w),
        "joint_pos_rel": joint_pos - default_joint_pos,
        "joint_vel": joint_vel,
        "last_action": last_action,
    }
    parts = []
    for t in layout:
        v = terms[t.name]
        if v.shape[-1] != t.size:
            raise ValueError(f"observation term {t.name} has size {v.shape[-1]}, layout says {t.size}")
        parts.append(v * t.scale if t.scale != 1.0 else v)
    return np.concatenate(parts, axis=-1).astype(np.float32)
