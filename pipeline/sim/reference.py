"""Reference motions at the policy rate, looped when cyclic, and adaptive sampling of start phases.

:class:`MotionReference` holds one or more RobotMotion clips resampled to the control period, concatenated:
``joint_pos``/``joint_vel`` (F, N) and every model body's ``body_pos_w``/``body_quat_w``/``body_lin_vel_w``/
``body_ang_vel_w`` (F, B, ...) with B = nbody - 1 (world excluded, RobotMotion's body order). ``at(clip, step)``
gives each env its reference frame; a clip whose ``source`` says ``cyclic: true`` loops forever with its root
advancing: cycle c is the clip moved by c times the planar (x, y, yaw) displacement from its first to its last
frame (the last frame is the first of the next cycle). A cyclic clip's seam is closed first (:func:`close_loop`):
whatever its last frame differs from the first beyond that planar displacement (joint angles, root height, roll,
pitch) is spread linearly over the clip, so the looped reference has no jump. A non-cyclic clip ends at its last
frame.

:class:`AdaptiveSampler` draws start frames with probability rising with the failure rate of their time bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.errors import InputError
from pipeline.geometry import (
    angular_velocity,
    finite_difference,
    from_rotation,
    quat_conj,
    quat_mul,
    to_rotation,
    yaw_quat,
)
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import RobotSpec

MAX_CYCLES = 64


def _yaw(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _resample(x: np.ndarray, t_src: np.ndarray, t_dst: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 0."""
    idx = np.clip(np.searchsorted(t_src, t_dst, side="right") - 1, 0, len(t_src) - 2)
    w = ((t_dst - t_src[idx]) / (t_src[idx + 1] - t_src[idx])).reshape(-1, *([1] * (x.ndim - 1)))
    return x[idx] * (1 - w) + x[idx + 1] * w


def _resample_quat(q: np.ndarray, t_src: np.ndarray, t_dst: np.ndarray) -> np.ndarray:
    q = q.copy()
    for i in range(1, len(q)):  # hemisphere continuity before interpolating
        flip = np.sum(q[i] * q[i - 1], axis=-1) < 0
        q[i][flip] *= -1
    out = _resample(q, t_src, t_dst)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def check_motion(
    motion: RobotMotion, robot: RobotSpec, body_names: Sequence[str], control_dt: float, origin: str
) -> None:
    """Bad input before training: another robot, other joints/bodies, too short, NaN."""
    if motion.robot != robot.name:
        raise InputError(origin, f"this motion is for robot '{motion.robot}', the task trains '{robot.name}'")
    if tuple(motion.joint_names) != tuple(robot.joint_names):
        raise InputError(origin, "joint names differ from the robot's joint order (robot.yaml)")
    if tuple(motion.body_names) != tuple(body_names):
        raise InputError(origin, "body names differ from the simulation model's bodies")
    duration = (motion.num_frames - 1) / motion.fps
    if duration < control_dt:
        raise InputError(
            origin, f"the clip lasts {duration:.4f} s, shorter than one policy step ({control_dt} s)"
        )
    motion.validate(origin)


def close_loop(motion: RobotMotion) -> RobotMotion:
    """The clip with its loop seam closed: the joint angles, the root height and the root's rotation away from
    the first frame's heading-rotated orientation, which differ between the last and the first frame, are
    corrected by a linear ramp (0 at the first frame, the whole difference at the last), and the bodies are
    recomputed by forward kinematics. The last frame then equals the first moved by the planar (x, y, yaw)
    displacement of the cycle."""
    n = motion.num_frames
    if n < 3:
        return motion
    ramp = np.linspace(0.0, 1.0, n)[:, None]
    qpos = motion.qpos.copy()
    qpos[:, 7:] -= ramp * (qpos[-1, 7:] - qpos[0, 7:])
    qpos[:, 2] -= ramp[:, 0] * (qpos[-1, 2] - qpos[0, 2])
    q0, q1 = qpos[0, 3:7], qpos[-1, 3:7]
    target = quat_mul(yaw_quat(_yaw(q1) - _yaw(q0)), q0)  # the first orientation at the last heading
    err = to_rotation(quat_mul(target, quat_conj(q1))).as_rotvec()  # world rotation taking q1 to target
    fix = from_rotation(Rotation.from_rotvec(ramp * err), (n,))
    qpos[:, 3:7] = quat_mul(fix, qpos[:, 3:7])
    return RobotMotion.from_qpos(
        motion.robot,
        qpos,
        motion.fps,
        contacts=motion.contacts,
        keypoint_names=motion.keypoint_names,
        keypoint_pos_w=motion.keypoint_pos_w,
        source=motion.source,
    )


@dataclass(frozen=True)
class ClipInfo:
    name: str
    start: int  # first row in the concatenated arrays
    length: int  # frames at the control rate
    cyclic: bool


class MotionReference:
    """Concatenated reference clips at the control rate (see the module docstring)."""

    def __init__(
        self,
        motions: Sequence[RobotMotion],
        names: Sequence[str],
        control_dt: float,
        robot: RobotSpec,
        body_names: Sequence[str],
    ) -> None:
        self.control_dt = control_dt
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("jp", "jv", "bp", "bq", "bv", "bw")}
        clips = []
        cycle_tables = []
        start = 0
        for motion, name in zip(motions, names, strict=True):
            check_motion(motion, robot, body_names, control_dt, name)
            cyclic = bool(motion.source.get("cyclic", False))
            if cyclic:
                motion = close_loop(motion)
            t_src = np.arange(motion.num_frames) / motion.fps
            n = int(np.floor(t_src[-1] / control_dt + 1e-9)) + 1
            t_dst = np.arange(n) * control_dt
            fps = 1.0 / control_dt
            jp = _resample(motion.dof_pos, t_src, t_dst)
            bp = _resample(motion.body_pos_w, t_src, t_dst)
            bq = _resample_quat(motion.body_quat_w, t_src, t_dst)
            parts["jp"].append(jp)
            jv = finite_difference(jp, fps)
            if cyclic and n > 2:  # the seam is closed: joint velocities wrap around it
                jv[0] = jv[-1] = (jp[1] - jp[-2]) * (fps / 2)
            parts["jv"].append(jv)
            parts["bp"].append(bp)
            parts["bq"].append(bq)
            parts["bv"].append(finite_difference(bp, fps))
            parts["bw"].append(angular_velocity(bq, fps))
            clips.append(ClipInfo(name, start, n, cyclic))
            cycle_tables.append(
                self._cycle_table(bp[:, 0], bq[:, 0]) if cyclic else self._cycle_table(None, None)
            )
            start += n
        self.clips = tuple(clips)
        self.joint_pos = np.concatenate(parts["jp"])
        self.joint_vel = np.concatenate(parts["jv"])
        self.body_pos_w = np.concatenate(parts["bp"])
        self.body_quat_w = np.concatenate(parts["bq"])
        self.body_lin_vel_w = np.concatenate(parts["bv"])
        self.body_ang_vel_w = np.concatenate(parts["bw"])
        self.clip_start = np.array([c.start for c in clips])
        self.clip_len = np.array([c.length for c in clips])
        self.clip_cyclic = np.array([c.cyclic for c in clips])
        self.cycle_yaw = np.stack([t[0] for t in cycle_tables])  # (C, MAX_CYCLES)
        self.cycle_trans = np.stack([t[1] for t in cycle_tables])  # (C, MAX_CYCLES, 3)

    @staticmethod
    def _cycle_table(
        root_pos: np.ndarray | None, root_quat: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Planar transforms of cycles 0..MAX_CYCLES-1: p' = Rz(yaw_c) p + trans_c."""
        yaw = np.zeros(MAX_CYCLES)
        trans = np.zeros((MAX_CYCLES, 3))
        if root_pos is None or root_quat is None:
            return yaw, trans
        dyaw = _yaw(root_quat[-1]) - _yaw(root_quat[0])
        p0 = root_pos[0] * [1, 1, 0]
        t1 = root_pos[-1] * [1, 1, 0] - _rotz(dyaw, p0)
        for c in range(1, MAX_CYCLES):
            yaw[c] = yaw[c - 1] + dyaw
            trans[c] = _rotz(dyaw, trans[c - 1]) + t1
        return yaw, trans

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    def duration_steps(self, clip: np.ndarray) -> np.ndarray:
        """Steps until a non-cyclic clip ends from frame 0 (length - 1); cyclic clips: effectively unbounded."""
        period = self.clip_len[clip] - 1
        return np.where(self.clip_cyclic[clip], period * (MAX_CYCLES - 1), period)

    def at(
        self, clip: np.ndarray, step: np.ndarray, bodies: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Reference of each env: ``clip`` (E,) ids, ``step`` (E,) frames since the clip's frame 0.

        Returns joint_pos/joint_vel (E, N), body_pos_w/body_quat_w/body_lin_vel_w/body_ang_vel_w (E, B, ...)
        and ``done`` (E,) bool: the non-cyclic clip is at its last frame. ``bodies`` (K,) picks K of the B
        bodies (the arrays are then (E, K, ...)).
        """
        length = self.clip_len[clip]
        period = np.maximum(length - 1, 1)
        cyclic = self.clip_cyclic[clip]
        cycle = np.where(cyclic, np.minimum(step // period, MAX_CYCLES - 1), 0)
        local = np.where(cyclic, step - cycle * period, np.minimum(step, length - 1))
        row = self.clip_start[clip] + local
        sel = (row,) if bodies is None else (row[:, None], np.asarray(bodies)[None, :])
        yaw = self.cycle_yaw[clip, cycle]
        trans = self.cycle_trans[clip, cycle]
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]

        def rot(v: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
            out = np.empty_like(v)
            out[..., 0] = c * v[..., 0] - s * v[..., 1]
            out[..., 1] = s * v[..., 0] + c * v[..., 1]
            out[..., 2] = v[..., 2]
            return out if shift is None else out + shift[:, None, :]

        ch, sh = np.cos(yaw / 2)[:, None], np.sin(yaw / 2)[:, None]
        b = self.body_quat_w[sel]
        quat = np.empty_like(b)  # (cos(yaw/2), 0, 0, sin(yaw/2)) * b
        quat[..., 0] = ch * b[..., 0] - sh * b[..., 3]
        quat[..., 1] = ch * b[..., 1] - sh * b[..., 2]
        quat[..., 2] = ch * b[..., 2] + sh * b[..., 1]
        quat[..., 3] = ch * b[..., 3] + sh * b[..., 0]
        return {
            "joint_pos": self.joint_pos[row],
            "joint_vel": self.joint_vel[row],
            "body_pos_w": rot(self.body_pos_w[sel], trans),
            "body_quat_w": quat,
            "body_lin_vel_w": rot(self.body_lin_vel_w[sel]),
            "body_ang_vel_w": rot(self.body_ang_vel_w[sel]),
            "done": (~cyclic) & (step >= length - 1),
        }


def _rotz(yaw: np.ndarray | float, v: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors about z by yaw (broadcast over leading axes)."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, y = v[..., 0], v[..., 1]
    return np.stack([c * x - s * y, s * x + c * y, v[..., 2] + 0 * c], axis=-1)


class AdaptiveSampler:
    """Start frames drawn per time bin, weighted by an EMA of the bin's failure rate (BeyondMimic-style)."""

    def __init__(
        self,
        reference: MotionReference,
        bin_s: float,
        uniform_ratio: float,
        alpha: float,
        adaptive: bool,
        rng: np.random.Generator,
    ) -> None:
        self.ref = reference
        self.rng = rng
        self.adaptive = adaptive
        self.uniform_ratio = uniform_ratio
        self.alpha = alpha
        bin_frames = max(1, round(bin_s / reference.control_dt))
        self.bin_frames = bin_frames
        # bins cover each clip's playable frames (0 .. length-2); a cyclic clip starts anywhere in its cycle
        nbins = [max(1, -(-(int(n) - 1) // bin_frames)) for n in reference.clip_len]
        self.bin_clip = np.concatenate([np.full(k, c) for c, k in enumerate(nbins)])
        self.bin_first = np.concatenate([np.arange(k) * bin_frames for k in nbins])
        self.bin_offset = np.concatenate([[0], np.cumsum(nbins)[:-1]])
        self.failure = np.zeros(len(self.bin_clip))

    def probabilities(self) -> np.ndarray:
        n = len(self.failure)
        uniform = np.full(n, 1.0 / n)
        if not self.adaptive or self.failure.sum() <= 0:
            return uniform
        p = self.failure / self.failure.sum()
        return (1 - self.uniform_ratio) * p + self.uniform_ratio * uniform

    def sample(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(clip ids, start frames), each (count,)."""
        b = self.rng.choice(len(self.failure), size=count, p=self.probabilities())
        clip = self.bin_clip[b]
        last = np.maximum(self.ref.clip_len[clip] - 2, 0)
        frame = np.minimum(self.bin_first[b] + self.rng.integers(0, self.bin_frames, size=count), last)
        return clip, frame

    def update(self, clip: np.ndarray, step: np.ndarray, failed: np.ndarray) -> None:
        """Record finished episodes: ``step`` (E,) is the clip frame where each ended; its bin gets failed (1)
        or not (0)."""
        if clip.size == 0:
            return
        length = self.ref.clip_len[clip]
        period = np.maximum(length - 1, 1)
        frame = np.where(self.ref.clip_cyclic[clip], step % period, np.minimum(step, length - 2))
        nb = np.diff(np.append(self.bin_offset, len(self.failure)))[clip]
        b = self.bin_offset[clip] + np.minimum(frame // self.bin_frames, nb - 1)
        target = np.zeros(len(self.failure))
        count = np.zeros(len(self.failure))
        np.add.at(target, b, failed.astype(np.float64))
        np.add.at(count, b, 1.0)
        seen = count > 0
        self.failure[seen] += (
            self.alpha
            * (target[seen] / count[seen] - self.failure[seen])
            * np.minimum(count[seen], 1 / self.alpha)
        )
        np.clip(self.failure, 0.0, 1.0, out=self.failure)
