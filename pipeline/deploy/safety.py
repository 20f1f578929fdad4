"""The runtime's safety layer: state checks, command limits, and the fault codes the run log records.

Every fault switches the runtime to damping mode (kp = 0, kd from the contract, no feed-forward) and ends the
run with a message naming the fault; nothing here raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from pipeline.deploy.state import RobotState


class Fault(IntEnum):
    NONE = 0
    NO_STATE = 1  # no state ever arrived
    STALE_STATE = 2  # the newest state is older than the watchdog
    BAD_CRC = 3  # states arrive with a wrong CRC
    NAN_STATE = 4
    NAN_ACTION = 5
    TILT = 6  # fall detection
    ESTOP = 7  # signal or key
    INTERFACE = 8  # the transport failed
    JOINT_LIMIT = 9  # a measured joint position is past its range by more than the margin


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the runtime (all seconds / radians / fractions)."""

    watchdog_s: float = 0.1
    first_state_timeout_s: float = 3.0
    max_tilt_deg: float = 60.0
    torque_limit_fraction: float = 1.0
    soft_start_s: float = 2.0
    settle_s: float = 0.5
    damping_s: float = 1.0
    bad_crc_limit: int = 10
    # rad past a joint's range (measured) that is a fault; MuJoCo's soft limits let the G1's ankles reach 0.13 rad
    # past theirs in randomized training rollouts, so a smaller margin would fault on normal contact
    joint_limit_margin: float = 0.2


@dataclass(frozen=True)
class JointRange:
    """The joints' names and position range (the contract's), for the joint-limit check."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray


def tilt_deg(imu_quat: np.ndarray) -> float:
    """Angle between the IMU body's z axis and the world's z axis, degrees."""
    w, x, y, z = imu_quat.tolist()
    n2 = w * w + x * x + y * y + z * z
    if not n2 > 0.0:  # not a rotation: report it as fallen over
        return 180.0
    cos_tilt = 1.0 - 2.0 * (x * x + y * y) / n2  # (R e_z) . e_z of the normalised quaternion
    return math.degrees(math.acos(max(-1.0, min(1.0, cos_tilt))))


def check_state(state: RobotState | None, now: float, cfg: SafetyConfig, started: float,
                joints: JointRange | None = None) -> tuple[Fault, str]:  # fmt: skip
    """The first fault a state shows, or (Fault.NONE, "")."""
    if state is None:
        if now - started > cfg.first_state_timeout_s:
            return Fault.NO_STATE, f"no robot state received within {cfg.first_state_timeout_s:g} s"
        return Fault.NONE, ""
    age = now - state.stamp
    if age > cfg.watchdog_s:
        return (
            Fault.STALE_STATE,
            f"robot state is {age * 1e3:.0f} ms old (watchdog {cfg.watchdog_s * 1e3:.0f} ms)",
        )
    if not state.is_finite():
        return Fault.NAN_STATE, "robot state contains NaN or infinite values"
    tilt = tilt_deg(state.imu_quat)
    if tilt > cfg.max_tilt_deg:
        return Fault.TILT, f"fall detected: base tilted {tilt:.0f} deg (limit {cfg.max_tilt_deg:g} deg)"
    if joints is not None:
        q = state.joint_pos
        if (q > joints.upper + cfg.joint_limit_margin).any() or (
            q < joints.lower - cfg.joint_limit_margin
        ).any():
            past = np.maximum(q - joints.upper, joints.lower - q)
            j = int(past.argmax())
            return Fault.JOINT_LIMIT, (
                f"joint {joints.names[j]} at {q[j]:.3f} rad is {past[j]:.3f} rad past its range "
                f"[{joints.lower[j]:.3f}, {joints.upper[j]:.3f}] (margin {cfg.joint_limit_margin:g} rad)"
            )
    return Fault.NONE, ""


def limit_targets(
    target: np.ndarray,
    q: np.ndarray,
    dq: np.ndarray,
    kp: np.ndarray,
    kd: np.ndarray,
    max_torque: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Clip position targets to what keeps the PD torque within ``max_torque`` at the measured state.

    tau = kp (target - q) - kd dq  =>  target within q + (+-max_torque + kd dq) / kp, at the measured ``q``,
    ``dq``. Returns (targets, joints clipped).
    """
    damp = kd * dq
    out = np.clip(target, q + (damp - max_torque) / kp, q + (damp + max_torque) / kp)
    return out, int(np.count_nonzero(out != target))


class TargetLimiter:
    """:func:`limit_targets` for fixed gains and torque limits, with the constants and work arrays allocated
    once (the same operations in the same order: equal results)."""

    def __init__(self, kp: np.ndarray, kd: np.ndarray, max_torque: np.ndarray) -> None:
        self.kp, self.kd = (np.array(a, dtype=np.float64) for a in (kp, kd))
        self.max_torque = np.array(max_torque, dtype=np.float64)
        n = self.kp.shape[0]
        self._damp, self._lo, self._hi = np.empty(n), np.empty(n), np.empty(n)
        self._diff = np.empty(n, dtype=bool)

    def __call__(self, target: np.ndarray, state: RobotState, out: np.ndarray) -> int:
        """Write the limited ``target`` into ``out`` (may be ``target`` itself); the number of joints clipped."""
        damp, lo, hi = self._damp, self._lo, self._hi
        np.multiply(self.kd, state.joint_vel, out=damp)
        np.subtract(damp, self.max_torque, out=lo)
        np.divide(lo, self.kp, out=lo)
        np.add(state.joint_pos, lo, out=lo)
        np.add(damp, self.max_torque, out=hi)
        np.divide(hi, self.kp, out=hi)
        np.add(state.joint_pos, hi, out=hi)
        # np.clip(target, lo, hi) as its two ufuncs (np.clip's Python wrapper costs more than they do)
        if out is target:
            np.maximum(target, lo, out=lo)  # lo is free again: compare before overwriting target
            np.minimum(lo, hi, out=lo)
            np.not_equal(lo, target, out=self._diff)
            np.copyto(out, lo)
        else:
            np.maximum(target, lo, out=out)
            np.minimum(out, hi, out=out)
            np.not_equal(out, target, out=self._diff)
        return int(np.count_nonzero(self._diff))


def soft_start_targets(q_start: np.ndarray, q_default: np.ndarray, t: float, duration: float) -> np.ndarray:
    """Smooth (cosine) ramp from the measured pose to the default pose over ``duration`` seconds."""
    s = 1.0 if duration <= 0 else min(1.0, max(0.0, t / duration))
    a = 0.5 - 0.5 * math.cos(math.pi * s)
    return (1.0 - a) * q_start + a * q_default
