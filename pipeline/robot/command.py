"""What a PD position command may ask of the motors, the same in training and on the robot.

A target outside the joint range, or further from the measured position than the motor's torque can follow,
is moved to the nearest target that is neither: the runtime applies this to every command it sends
(pipeline/deploy/safety.py), and training applies it to every action (pipeline/sim/task.py), so a policy never
learns to rely on targets the robot would not be sent.
"""

from __future__ import annotations

import numpy as np


def limit_targets(
    target: np.ndarray,
    q: np.ndarray,
    dq: np.ndarray,
    kp: np.ndarray,
    kd: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_torque: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Clip position targets to [lower, upper] and to what keeps the PD torque within ``max_torque``.

    tau = kp (target - q) - kd dq  =>  target within q + (+-max_torque + kd dq) / kp, at the measured ``q``,
    ``dq``. Arrays broadcast: (N,) for one robot, (E, N) for a batch. Returns (targets, entries clipped).
    """
    lo = np.maximum(lower, q + (-max_torque + kd * dq) / kp)
    hi = np.minimum(upper, q + (max_torque + kd * dq) / kp)
    hi = np.maximum(hi, lo)  # outside the range already: stay at the nearest bound
    out = np.clip(target, lo, hi)
    return out, int(np.count_nonzero(out != target))
