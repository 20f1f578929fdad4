"""Robot interfaces: the runtime talks to every robot through ``read`` / ``send``.

``SimInterface`` runs the G1 in MuJoCo in this process (physics advances when a command is sent);
``DdsInterface`` speaks rt/lowcmd / rt/lowstate to the hardware or to ``mimic sim-robot``. Both describe the
robot they are connected to (name, joint order, gains) so the runtime can check the bundle against it.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from pipeline.deploy import dds
from pipeline.deploy.simrobot import SimRobot
from pipeline.deploy.state import MotorCommand, RobotState
from pipeline.robot.spec import load_robot


class RobotInterface(Protocol):
    robot: str
    joint_names: tuple[str, ...]
    kp: np.ndarray
    kd: np.ndarray
    realtime: bool  # True: the runtime paces itself with the wall clock
    bad_crc: int  # states rejected for a wrong CRC so far

    def read(self) -> RobotState | None: ...

    def build(self, cmd: MotorCommand) -> object:
        """The transport message for ``cmd`` (the compute part of sending)."""
        ...

    def publish(self, msg: object) -> None:
        """Hand a built message to the robot."""
        ...

    def close(self) -> None: ...


class _Described:
    def _describe(self, robot: str) -> None:
        spec = load_robot(robot)
        self.robot = spec.name
        self.joint_names = spec.joint_names
        self.kp, self.kd = spec.kp, spec.kd
        self.bad_crc = 0


class SimInterface(_Described):
    """MuJoCo in process; each ``send`` advances physics by one control period (``decimation`` steps).

    ``hold_s``: the base is held (harness) until this much simulated time has passed since the first command.
    """

    def __init__(
        self, robot: str = "g1", *, control_dt: float, hold_s: float = 0.0, realtime: bool = False
    ) -> None:
        self._describe(robot)
        self.sim = SimRobot(robot, hold_s=hold_s)
        self.decimation = round(control_dt / self.sim.dt)
        self.realtime = realtime
        self.ticks: list[int] = []
        self.qpos: list[np.ndarray] = []
        self._tick = 0

    def read(self) -> RobotState:
        return self.sim.state(time.monotonic(), self._tick)

    def build(self, cmd: MotorCommand) -> MotorCommand:
        """A copy (the runtime reuses its command buffers; physics reads this one while it steps)."""
        return MotorCommand(cmd.q.copy(), cmd.dq.copy(), cmd.tau.copy(), cmd.kp.copy(), cmd.kd.copy())

    def publish(self, msg: object) -> None:
        assert isinstance(msg, MotorCommand)
        self.sim.command = msg
        for _ in range(self.decimation):
            self.sim.step()
            self._tick += 1
            self.ticks.append(self._tick)
            self.qpos.append(self.sim.data.qpos.copy())

    def close(self) -> None:
        pass


class DdsInterface(_Described):
    """The Unitree low-level transport. ``robot`` names the robot on the other side (robots/<robot>)."""

    realtime = True

    def __init__(self, robot: str = "g1", *, domain: int = 0, iface: str | None = None) -> None:
        self._describe(robot)
        self.n = len(self.joint_names)
        self.part = dds.Participant(domain, iface)
        self.reader = self.part.reader(dds.LOWSTATE_TOPIC, dds.lowstate_type())
        self.writer = self.part.writer(dds.LOWCMD_TOPIC, dds.lowcmd_type())
        self.cmd = dds.CommandWriter(self.n)
        self.decode = dds.StateReader(self.n)
        self._last: RobotState | None = None
        self.received = 0

    def read(self) -> RobotState | None:
        """The newest state (the reader keeps the last sample only); the previous one if nothing new arrived."""
        for data in dds.take_raw(self.reader, 1):
            state, ok = self.decode(data, time.monotonic())
            if not ok:
                self.bad_crc += 1
                continue
            self.bad_crc = 0
            self.received += 1
            self._last = state
        return self._last

    def build(self, cmd: MotorCommand) -> bytes:
        """The LowCmd_ wire bytes for ``cmd`` with its CRC (the compute part of sending)."""
        return self.cmd.fill(cmd)

    def publish(self, msg: object) -> None:
        assert isinstance(msg, bytes)
        dds.write_raw(self.writer, msg)

    def close(self) -> None:
        for ent in ("writer", "reader"):
            if hasattr(self, ent):
                delattr(self, ent)
