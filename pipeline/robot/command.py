"""What a PD position command may ask of the motors, the same in training and on the robot.

A target further from the measured position than the motor's torque can follow is moved to the nearest target
it can: the runtime applies this to every command it sends (pipeline/deploy/safety.py), and training applies
it to every action (pipeline/sim/task.py), so a policy never learns to rely on targets the robot would not be
sent. Targets are not clipped to the joint range: near a limit a target past it is how a position-controlled
joint gets its full torque (training without that clip tracked better under randomization); the runtime
guards the range by checking the measured positions instead (``SafetyConfig.joint_limit_margin``).
"""

from __future__ import annotations

import numpy as np


def limit_targets(
    target: np.ndarray,
    q: np.ndarray,
    dq: np.ndarray,
    kp: np.ndarray,
    kd: np.ndarray,
    max_torque: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Clip position targets to what keeps the PD torque within ``max_torque``.

    tau = kp (target - q) - kd dq  =>  target within q + (+-max_torque + kd dq) / kp, at the measured ``q``,
    ``dq``. Arrays broadcast: (N,) for one robot, (E, N) for a batch. Returns (targets, entries clipped).
    """
    damp = kd * dq
    out = np.clip(target, q + (damp - max_torque) / kp, q + (damp + max_torque) / kp)
    return out, int(np.count_nonzero(out != target))
