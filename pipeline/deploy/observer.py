"""Actor observations on the robot: the training definition (pipeline.deploy.observation) for one robot.

The robot gives the pelvis IMU orientation and angular velocity and the joint states; the anchor (torso)
orientation comes from the IMU through the waist joints (:class:`AnchorChain` carried in deploy.json). When the
motion starts, the reference anchor orientations are rotated about z so that their heading at frame 0 equals the
robot's, as in training where every episode starts with the robot's heading on the reference's.

:meth:`Observer.frame` is the single-robot fast path of :func:`~pipeline.deploy.observation.actor_observation`:
the quaternion terms (anchor chain, orientation error, projected gravity) are evaluated on Python floats with the
same operations in the same order as the batched numpy code, so the result is bit-identical to it
(tests/test_deploy_fastpath.py checks this on random inputs); the reference terms of every frame are scaled once
at load, and the observation is written into one preallocated buffer. :meth:`Observer.frame_reference` is the
batched definition itself, kept as the reference the fast path is checked against.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.deploy.contract import DeployContract, ReferenceMotion
from pipeline.deploy.observation import (
    AnchorChain,
    ObsTermSpec,
    actor_layout,
    actor_observation,
    align_yaw,
    yaw_alignment,
)
from pipeline.deploy.state import RobotState
from pipeline.errors import InputError

Quat = tuple[float, float, float, float]


def quat_mul_f(a: Quat, b: Quat) -> Quat:
    """Hamilton product on floats, term order of :func:`pipeline.deploy.observation.quat_mul`."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )


class SingleChain:
    """:meth:`AnchorChain.anchor_quat` for one robot, on floats (the chain's constants unpacked once)."""

    def __init__(self, chain: AnchorChain) -> None:
        self.links = tuple(
            (int(j), tuple(float(v) for v in chain.body_quat[k]), tuple(float(v) for v in chain.axis[k]))
            for k, j in enumerate(chain.joint_index)
        )
        self.tail: Quat = tuple(float(v) for v in chain.tail_quat)  # type: ignore[assignment]

    def anchor_quat(self, pelvis_quat_w: Quat, joint_pos: list[float]) -> Quat:
        q = pelvis_quat_w
        for j, body, (x, y, z) in self.links:
            q = quat_mul_f(q, body)  # type: ignore[arg-type]
            half = 0.5 * joint_pos[j]
            s = math.sin(half)
            q = quat_mul_f(q, (math.cos(half), s * x, s * y, s * z))
        return quat_mul_f(q, self.tail)


def anchor_ori_error_f(ref: Quat, anchor: Quat) -> tuple[float, ...]:
    """:func:`pipeline.deploy.observation.anchor_ori_error` on floats: (R00, R01, R10, R11, R20, R21)."""
    aw, ax, ay, az = anchor
    w, x, y, z = quat_mul_f((aw, ax * -1.0, ay * -1.0, az * -1.0), ref)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z),
        2 * (x * z - w * y), 2 * (y * z + w * x),
    )  # fmt: skip


def projected_gravity_f(q: Quat) -> tuple[float, float, float]:
    """:func:`pipeline.deploy.observation.projected_gravity` on floats (quat_rotate_inv of (0, 0, -1))."""
    w = q[0]
    ux, uy, uz = -q[1], -q[2], -q[3]
    vx, vy, vz = 0.0, 0.0, -1.0
    tx = 2.0 * (uy * vz - uz * vy)
    ty = 2.0 * (uz * vx - ux * vz)
    tz = 2.0 * (ux * vy - uy * vx)
    return (
        vx + w * tx + (uy * tz - uz * ty),
        vy + w * ty + (uz * tx - ux * tz),
        vz + w * tz + (ux * ty - uy * tx),
    )


class Observer:
    """One observation frame (D,) per control step from a RobotState and the reference frame index."""

    def __init__(self, contract: DeployContract, motion: ReferenceMotion, chain: AnchorChain) -> None:
        n = contract.num_joints
        known = {t.name for t in actor_layout(n)}
        unknown = [t.name for t in contract.obs_terms if t.name not in known]
        if unknown:
            raise InputError("deploy.json", f"observation terms {unknown} are not known to this runtime")
        self.layout = tuple(ObsTermSpec(t.name, t.size, t.scale) for t in contract.obs_terms)
        sizes = {t.name: t.size for t in actor_layout(n)}
        for t in self.layout:
            if t.size != sizes[t.name]:
                raise InputError(
                    "deploy.json", f"observation term {t.name} has size {t.size}, not {sizes[t.name]}"
                )
        self.default = contract.default_joint_pos[None]
        self.motion = motion
        self.chain = chain
        self.single = SingleChain(chain)
        # the reference anchor orientations as floats; start() sets the heading alignment, a rotation about z
        # applied to frame k when it is used (the same product align_yaw applies to every frame)
        self._ref_anchor: list[Quat] = [tuple(q) for q in motion.anchor_quat_w.tolist()]  # type: ignore[misc]
        self._align: Quat | None = None
        self._start_anchor: np.ndarray | None = None  # (1, 4) the robot's anchor at start()
        self._ref_aligned: np.ndarray | None = None
        # where each term goes in the frame, and its scale
        self.slices: dict[str, tuple[slice, float]] = {}
        at = 0
        for t in self.layout:
            self.slices[t.name] = (slice(at, at + t.size), float(t.scale))
            at += t.size
        self.size = at
        self._out64 = np.zeros(at)
        self._views = {name: (self._out64[sl], scale) for name, (sl, scale) in self.slices.items()}
        self._out = np.zeros(at, np.float32)
        # the reference terms of every frame, scaled as actor_observation scales them
        self._ref_terms = {
            name: v * self.slices[name][1] if self.slices[name][1] != 1.0 else v.copy()
            for name, v in (("ref_joint_pos", motion.joint_pos), ("ref_joint_vel", motion.joint_vel))
            if name in self.slices
        }
        self._default = contract.default_joint_pos.copy()

    def anchor_quat_w(self, state: RobotState) -> np.ndarray:
        """(1, 4) the robot's anchor orientation in the IMU's world frame."""
        return self.chain.anchor_quat(state.imu_quat[None], state.joint_pos[None])

    def alignment(self, state: RobotState) -> tuple[Quat, np.ndarray]:
        """(the heading alignment rotation, (1, 4) the robot's anchor orientation) for a start at ``state``;
        no effect (the runtime's warm-up calls it before the policy starts)."""
        imu: Quat = tuple(state.imu_quat.tolist())  # type: ignore[assignment]
        anchor = np.array([self.single.anchor_quat(imu, state.joint_pos.tolist())])
        qz = yaw_alignment(anchor, self.motion.anchor_quat_w[:1])
        return tuple(qz[0].tolist()), anchor  # type: ignore[return-value]

    @property
    def started(self) -> bool:
        return self._align is not None

    def start(self, state: RobotState) -> None:
        """Align the reference heading to the robot's (call at the first policy step). Constant time: only the
        alignment rotation is computed here; :meth:`frame` applies it to the one reference frame it uses."""
        self._align, self._start_anchor = self.alignment(state)
        self._ref_aligned = None

    @property
    def ref_anchor_quat_w(self) -> np.ndarray:
        """(T, 4) the reference anchor orientations, heading-aligned by :meth:`start` (through align_yaw, built
        on first use: the batched reference path)."""
        ref = self.motion.anchor_quat_w
        if self._start_anchor is None:
            return ref
        if self._ref_aligned is None:
            self._ref_aligned = align_yaw(ref, self._start_anchor, ref[:1])
        return self._ref_aligned

    def frame(self, state: RobotState, k: int, last_action: np.ndarray) -> np.ndarray:
        """(D,) float32 observation at reference frame k. The array is reused: valid until the next call."""
        imu: Quat = tuple(state.imu_quat.tolist())  # type: ignore[assignment]
        for name, ref in self._ref_terms.items():
            self._views[name][0][:] = ref[k]
        views = self._views
        if "anchor_ori_error" in views:
            anchor = self.single.anchor_quat(imu, state.joint_pos.tolist())
            ref_q = (
                self._ref_anchor[k] if self._align is None else quat_mul_f(self._align, self._ref_anchor[k])
            )
            self._put("anchor_ori_error", anchor_ori_error_f(ref_q, anchor))
        if "projected_gravity_b" in views:
            self._put("projected_gravity_b", projected_gravity_f(imu))
        if "joint_pos_rel" in views:
            dst, scale = views["joint_pos_rel"]
            np.subtract(state.joint_pos, self._default, out=dst)
            if scale != 1.0:
                dst *= scale
        for name, v in (("base_ang_vel_b", state.imu_gyro), ("joint_vel", state.joint_vel),
                        ("last_action", last_action)):  # fmt: skip
            if name in views:
                self._put(name, v)
        np.copyto(self._out, self._out64, casting="same_kind")
        return self._out

    def _put(self, name: str, v: np.ndarray | tuple[float, ...]) -> None:
        dst, scale = self._views[name]
        dst[:] = v
        if scale != 1.0:
            dst *= scale

    def frame_reference(self, state: RobotState, k: int, last_action: np.ndarray) -> np.ndarray:
        """The same frame through the batched training code (B = 1): what :meth:`frame` must equal."""
        m = self.motion
        return actor_observation(
            ref_joint_pos=m.joint_pos[k][None],
            ref_joint_vel=m.joint_vel[k][None],
            ref_anchor_quat_w=self.ref_anchor_quat_w[k][None],
            anchor_quat_w=self.anchor_quat_w(state),
            base_quat_w=state.imu_quat[None],
            base_ang_vel_b=state.imu_gyro[None],
            joint_pos=state.joint_pos[None],
            joint_vel=state.joint_vel[None],
            default_joint_pos=self.default,
            last_action=last_action[None],
            layout=self.layout,
        )[0]
