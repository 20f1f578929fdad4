"""``mimic sim-robot``: the G1 in MuJoCo behind the robot's own transport.

Subscribes ``rt/lowcmd`` (commands with a wrong CRC are ignored, as the hardware does), applies the motor PD
of the newest valid command at every physics step (500 Hz), and publishes ``rt/lowstate`` (motor states, IMU
quaternion/gyro/accelerometer, tick = physics step count) at every physics step, paced to the wall clock (on
a loaded machine it falls behind and runs slower than real time; ``realtime_factor`` in the trace says so).

Fault injection for tests (``fault`` from ``fault_at`` seconds of simulated time after the first command on):
``drop`` stops publishing states, ``stall`` pauses them for ``stall_s`` then resumes, ``bad-crc`` publishes
states with a wrong CRC.
``record`` writes the trajectory (tick, qpos at every step) when the bridge stops (SIGINT/SIGTERM or duration).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.deploy import dds
from pipeline.deploy.contract import load_bundle
from pipeline.deploy.simrobot import SimRobot
from pipeline.io import save_npz

TRACE_FORMAT = "mimic.SimRobotTrace"
TRACE_VERSION = 1
FAULTS = ("none", "drop", "stall", "bad-crc")


@dataclass(frozen=True)
class BridgeConfig:
    robot: str = "g1"
    domain: int = 0
    iface: str | None = "lo"
    hold_s: float = 0.0
    duration_s: float | None = None  # simulated seconds; None: until stopped
    fault: str = "none"
    fault_at: float = 0.0
    stall_s: float = 0.5
    record: Path | None = None
    # start at rest in this bundle's first reference frame (SimRobot.stand_at_start), not the default pose
    start_bundle: Path | None = None


class Bridge:
    def __init__(self, cfg: BridgeConfig) -> None:
        if cfg.fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}")
        self.cfg = cfg
        self.sim = SimRobot(cfg.robot, hold_s=cfg.hold_s)
        if cfg.start_bundle is not None:
            self.sim.stand_at_start(load_bundle(cfg.start_bundle))
        self.n = self.sim.spec.num_joints
        self.part = dds.Participant(cfg.domain, cfg.iface)
        self.reader = self.part.reader(dds.LOWCMD_TOPIC, dds.lowcmd_type())
        self.writer = self.part.writer(dds.LOWSTATE_TOPIC, dds.lowstate_type())
        self.states = dds.StateWriter(self.n)
        self.stop = threading.Event()
        self.commands = 0
        self.bad_crc = 0
        self.published = 0
        self.last_kp_max = float("nan")
        self.wall_start = time.monotonic()
        self.ticks: list[int] = []
        self.qpos: list[np.ndarray] = []

    def _take_command(self) -> None:
        for data in dds.take_raw(self.reader, 1):
            cmd, ok = dds.command_from_wire(data, self.n)
            if not ok:
                self.bad_crc += 1
                continue
            self.commands += 1
            self.sim.command = cmd
            self.last_kp_max = float(cmd.kp.max())

    def _publishing(self, t: float) -> tuple[bool, int]:
        c = self.cfg
        if c.fault == "none" or t < 0 or t < c.fault_at:
            return True, 0
        if c.fault == "drop":
            return False, 0
        if c.fault == "stall":
            return t >= c.fault_at + c.stall_s, 0
        return True, 1  # bad-crc

    def run(self) -> None:
        dt = self.sim.dt
        t0 = self.wall_start = time.monotonic()
        step = 0
        while not self.stop.is_set():
            if self.cfg.duration_s is not None and self.sim.time >= self.cfg.duration_s:
                break
            self._take_command()
            self.sim.step()
            step += 1
            self.ticks.append(step)
            self.qpos.append(self.sim.data.qpos.copy())
            t_first = self.sim.t_first_command
            publish, crc_offset = self._publishing(-1.0 if t_first is None else self.sim.time - t_first)
            if publish:
                dds.write_raw(self.writer, self.states.fill(self.sim.state(0.0, step), crc_offset=crc_offset))
                self.published += 1
            delay = t0 + step * dt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.1:  # far behind the wall clock (a loaded machine): run slower than real time
                t0 = time.monotonic() - step * dt

    def save(self) -> None:
        if self.cfg.record is None:
            return
        save_npz(self.cfg.record, TRACE_FORMAT, TRACE_VERSION, {
            "tick": np.asarray(self.ticks, np.int64),
            "qpos": np.asarray(self.qpos).reshape(-1, self.sim.model.nq),
            "dt": np.float64(self.sim.dt),
            "robot": np.array(self.cfg.robot),
            "stats": {"commands": self.commands, "bad_crc": self.bad_crc, "published": self.published,
                      "last_kp_max": self.last_kp_max, "sim_s": self.sim.time,
                      "realtime_factor": self.sim.time / max(time.monotonic() - self.wall_start, 1e-9)},
        })  # fmt: skip


def serve(cfg: BridgeConfig) -> int:
    bridge = Bridge(cfg)

    def _stop(_s: int, _f: object) -> None:
        bridge.stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    print(
        f"sim-robot ready: {cfg.robot} on DDS domain {cfg.domain}, interface {cfg.iface or 'auto'}",
        flush=True,
    )
    try:
        bridge.run()
    finally:
        bridge.save()
        print(
            f"sim-robot stopped after {bridge.sim.time:.2f} s simulated: {bridge.commands} commands "
            f"({bridge.bad_crc} with a wrong CRC ignored), {bridge.published} states published",
            file=sys.stderr,
            flush=True,
        )
    return 0
