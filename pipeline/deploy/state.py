"""What the runtime reads from a robot and what it sends back, independent of the transport.

Arrays are in the robot's joint order, shape (N,), float64; the IMU is the one in the pelvis (``imu_body``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RobotState:
    """One low-level state sample.

    stamp: monotonic seconds (``time.monotonic``) when the runtime received it.  tick: the robot's counter.
    joint_pos (rad), joint_vel (rad/s), joint_tau (N m, estimated): (N,).
    imu_quat: (4,) wxyz, IMU body orientation in the robot's world frame (yaw arbitrary).
    imu_gyro: (3,) rad/s in the IMU body frame.  imu_acc: (3,) m/s^2 specific force in the IMU body frame.
    """

    stamp: float
    tick: int
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    joint_tau: np.ndarray
    imu_quat: np.ndarray
    imu_gyro: np.ndarray
    imu_acc: np.ndarray

    def is_finite(self) -> bool:
        """No NaN or infinity in the joint positions/velocities and the IMU quaternion/gyro (one sum: a NaN or an
        infinity makes it non-finite; so would finite values summing past 1e308, garbage for a robot anyway)."""
        return math.isfinite(
            self.joint_pos.sum() + self.joint_vel.sum() + self.imu_quat.sum() + self.imu_gyro.sum()
        )


@dataclass(frozen=True)
class MotorCommand:
    """Per-joint motor PD command: tau = kp (q - q_meas) + kd (dq - dq_meas) + tau_ff. All (N,)."""

    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    kp: np.ndarray
    kd: np.ndarray

    @classmethod
    def position(cls, q: np.ndarray, kp: np.ndarray, kd: np.ndarray) -> MotorCommand:
        z = np.zeros_like(q)
        return cls(q=q, dq=z, tau=z, kp=kp, kd=kd)

    @classmethod
    def damping(cls, q: np.ndarray, kd: np.ndarray) -> MotorCommand:
        """Damping mode: no stiffness, no feed-forward, only joint damping."""
        z = np.zeros_like(kd)
        return cls(q=np.array(q, dtype=np.float64), dq=z, tau=z, kp=z, kd=np.asarray(kd, dtype=np.float64))

    def torque(self, q_meas: np.ndarray, dq_meas: np.ndarray) -> np.ndarray:
        return self.kp * (self.q - q_meas) + self.kd * (self.dq - dq_meas) + self.tau
