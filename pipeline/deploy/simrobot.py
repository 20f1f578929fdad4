"""The G1 in MuJoCo driven like the hardware: motor PD on (q, dq, tau, kp, kd) at the physics rate.

Used in process by the ``sim`` robot interface and behind DDS by ``mimic sim-robot``. The motor PD and the
effort clamp are applied every physics step (500 Hz), like the motor drivers do.
"""

from __future__ import annotations

import mujoco
import numpy as np

from pipeline.deploy.contract import Bundle
from pipeline.deploy.state import MotorCommand, RobotState
from pipeline.robot.model import mujoco_model
from pipeline.robot.spec import load_robot


class SimRobot:
    """A simulated robot.

    ``hold_s`` > 0: a harness holds the pelvis in place until ``hold_s`` seconds of simulated time after the
    first command (the time a runtime needs to soft-start), then lets go.
    """

    def __init__(self, robot: str = "g1", *, hold_s: float = 0.0) -> None:
        self.spec = load_robot(robot)
        self.model = mujoco_model(robot, actuators=False)
        self.data = mujoco.MjData(self.model)
        self.hold_s = hold_s
        self.t_first_command: float | None = None
        self.dt = float(self.model.opt.timestep)
        self._sensor = {
            name: slice(self.model.sensor_adr[i], self.model.sensor_adr[i] + self.model.sensor_dim[i])
            for i, name in ((i, self.model.sensor(i).name) for i in range(self.model.nsensor))
        }
        self.tau = np.zeros(self.spec.num_joints)
        self.command: MotorCommand | None = None
        self.reset()

    def reset(self, qpos: np.ndarray | None = None) -> None:
        """Default pose standing on the floor, or ``qpos`` (7 + N, MuJoCo order)."""
        mujoco.mj_resetData(self.model, self.data)
        if qpos is None:
            qpos = np.concatenate([[0, 0, self.spec.default_root_height, 1, 0, 0, 0], self.spec.default_pos])
        self.data.qpos[:] = qpos
        self._hold = self.data.qpos[:7].copy()
        mujoco.mj_forward(self.model, self.data)

    def stand_at_start(self, bundle: Bundle) -> None:
        """Reset at rest in the bundle reference's first frame: its joint pose, with the anchor body where the
        reference puts it (so the feet are on the floor as in the reference), as a gantry lowers the robot."""
        m = bundle.motion
        self.reset(np.concatenate([[0, 0, 0, 1, 0, 0, 0], m.joint_pos[0]]))
        anchor = self.data.body(bundle.contract.anchor_body)
        rel_pos, rel_quat = anchor.xpos.copy(), anchor.xquat.copy()  # the anchor in the root's frame
        inv, root_quat, offset = np.empty(4), np.empty(4), np.empty(3)
        mujoco.mju_negQuat(inv, rel_quat)
        mujoco.mju_mulQuat(root_quat, m.anchor_quat_w[0].astype(np.float64), inv)
        mujoco.mju_rotVecQuat(offset, rel_pos, root_quat)
        self.reset(np.concatenate([m.anchor_pos_w[0] - offset, root_quat, m.joint_pos[0]]))

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def held(self) -> bool:
        if self.hold_s <= 0:
            return False
        return self.t_first_command is None or self.data.time - self.t_first_command < self.hold_s

    def step(self, n: int = 1) -> None:
        """``n`` physics steps under the current command (zero torque before the first command)."""
        limit = self.spec.effort_limit
        if self.command is not None and self.t_first_command is None:
            self.t_first_command = self.data.time
        for _ in range(n):
            q, dq = self.data.qpos[7:], self.data.qvel[6:]
            if self.command is None:
                self.tau[:] = 0.0
            else:
                np.clip(self.command.torque(q, dq), -limit, limit, out=self.tau)
            self.data.qfrc_applied[6:] = self.tau
            mujoco.mj_step(self.model, self.data)
            if self.held:
                self.data.qpos[:7] = self._hold
                self.data.qvel[:6] = 0.0

    def state(self, stamp: float, tick: int = 0) -> RobotState:
        d, s = self.data, self._sensor
        return RobotState(
            stamp=stamp,
            tick=tick,
            joint_pos=d.qpos[7:].copy(),
            joint_vel=d.qvel[6:].copy(),
            joint_tau=self.tau.copy(),
            imu_quat=d.qpos[3:7] / np.linalg.norm(d.qpos[3:7]),
            imu_gyro=d.qvel[3:6].copy(),  # the ideal pelvis gyro (the gyro sensor lags qvel by one step)
            imu_acc=d.sensordata[s["imu_lin_acc"]].copy(),
        )

    def body_pos_w(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """(B, 3) world positions of the named bodies."""
        return np.stack([self.data.body(n).xpos.copy() for n in names])
