"""The deploy runtime: a fixed-rate loop that reads the robot, builds observations, infers, and commands.

Phases: WAIT (first state) -> SOFT_START (cosine ramp from the measured pose to the default pose, or to the
reference's first frame with ``start_pose="reference"``, then a short settle) -> POLICY (one reference frame per control step) -> END (damping). Any fault (see
:mod:`pipeline.deploy.safety`) or an e-stop (SIGINT/SIGTERM, or the keys q/e/space on a TTY) switches to
damping for ``damping_s`` and ends the run with a message. A fault in END (e.g. the damped robot tipping over
after a clip that ends mid-stride) is logged and named in the message, but the run has completed.
``dry_run`` builds every command but publishes none.
Every run writes a log (pipeline/deploy/README.md, "Run log").
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.deploy.contract import Bundle, check_robot
from pipeline.deploy.interfaces import RobotInterface
from pipeline.deploy.observation import AnchorChain
from pipeline.deploy.observer import Observer
from pipeline.deploy.policy import ObsHistory, OnnxPolicy
from pipeline.deploy.safety import (
    Fault,
    JointRange,
    SafetyConfig,
    TargetLimiter,
    check_state,
    soft_start_targets,
)
from pipeline.deploy.state import MotorCommand, RobotState
from pipeline.io import save_npz

LOG_FORMAT = "mimic.DeployLog"
LOG_VERSION = 1


class Phase(IntEnum):
    WAIT = 0
    SOFT_START = 1
    POLICY = 2
    END = 3
    DAMPING = 4


@dataclass(frozen=True)
class RunConfig:
    dry_run: bool = False
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    keyboard: bool = True  # e-stop keys when stdin is a TTY
    max_policy_steps: int | None = None  # default: the whole reference motion
    start_pose: str = "default"  # soft start to the default pose, or to the reference's first frame
    rt_priority: int = 0  # > 0: run the loop thread under SCHED_FIFO at this priority (real-time robots only)
    # real-time robots: run the step's work (discarded) back to back for this long before each soft-start and
    # policy tick, so its code and data are hot when the state arrives (costs warm_s / control_dt of a core;
    # 0 = plain sleep)
    warm_s: float = 0.002


@dataclass(frozen=True)
class RunResult:
    status: str  # "completed" | "fault" | "estop"
    fault: Fault
    message: str
    policy_steps: int
    log: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "completed"


class Runtime:
    """Runs one bundle on one robot interface. Refuses (ContractMismatch) a bundle made for another robot."""

    def __init__(self, bundle: Bundle, iface: RobotInterface, cfg: RunConfig | None = None) -> None:
        c = bundle.contract
        check_robot(c, robot=iface.robot, joint_names=iface.joint_names, kp=iface.kp, kd=iface.kd,
                    where=bundle.root / "deploy.json")  # fmt: skip
        self.bundle, self.iface, self.cfg = bundle, iface, cfg or RunConfig()
        self.c = c
        self.policy = OnnxPolicy(
            bundle.policy_path, obs_size=c.obs_size * c.history, num_actions=c.num_joints
        )
        self.observer = Observer(c, bundle.motion, AnchorChain.from_json(c.anchor_chain))
        self.history = ObsHistory(c.history, c.obs_size, np.float32)
        self.max_torque = c.effort_limit * self.cfg.safety.torque_limit_fraction
        self.limiter = TargetLimiter(c.kp, c.kd, self.max_torque)
        self.joints = JointRange(c.joint_names, c.joint_pos_lower, c.joint_pos_upper)
        self._target = np.zeros(c.num_joints)
        self._zeros = np.zeros(c.num_joints)
        self._scratch = np.zeros(c.num_joints)
        self._zeros.flags.writeable = False
        self._estop: str | None = None
        if self.cfg.start_pose not in ("default", "reference"):
            raise ValueError("start_pose must be 'default' or 'reference'")
        self.start_pose = (
            c.default_joint_pos if self.cfg.start_pose == "default" else bundle.motion.joint_pos[0]
        )

    # ---- e-stop ---------------------------------------------------------------------------------------------

    def estop(self, why: str) -> None:
        self._estop = self._estop or why

    @contextlib.contextmanager
    def _estop_sources(self) -> Iterator[None]:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(
                    sig, lambda s, _f: self.estop(f"e-stop: {signal.Signals(s).name}")
                )
        keys = stop_r = stop_w = None
        if self.cfg.keyboard and sys.stdin.isatty():
            stop_r, stop_w = os.pipe()
            keys = threading.Thread(target=self._watch_keys, args=(stop_r,), daemon=True)
            keys.start()
        try:
            yield
        finally:
            if keys is not None and stop_r is not None and stop_w is not None:
                os.write(stop_w, b"x")
                keys.join(timeout=0.5)
                os.close(stop_w)
                if not keys.is_alive():
                    os.close(stop_r)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch_keys(self, stop_r: int) -> None:
        """Blocks until a key or the stop pipe is readable: the thread never wakes (and never takes the GIL
        from the loop) unless a key is pressed."""
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while True:
                ready = select.select([fd, stop_r], [], [])[0]
                if stop_r in ready:
                    break
                data = os.read(fd, 1)
                if not data:  # the terminal closed
                    break
                key = data.decode(errors="replace")
                if key in ("q", "e", " "):
                    self.estop(f"e-stop: key '{key}'")
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    # ---- the loop -------------------------------------------------------------------------------------------

    def initial_action(self) -> np.ndarray:
        """``last_action`` at the first policy step: the action that holds the reference's first frame (what
        training puts there when an episode starts)."""
        c = self.c
        return (self.bundle.motion.joint_pos[0] - c.default_joint_pos) / c.action_scale

    def policy_step(
        self, state: RobotState, k: int, last_action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(observation (H*D,), raw action (N,)) at reference frame k."""
        obs = self.history.push(self.observer.frame(state, k, last_action))
        return obs, self.policy(obs)

    def policy_command(
        self, state: RobotState, k: int, last_action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, MotorCommand | None, int]:
        """The compute of one policy step: (observation (H*D,), raw action (N,), the limited position command
        or None when the action is not finite, joints clipped). The command's ``q`` is a buffer reused by the
        next call; the observation is the history buffer (valid until the next call)."""
        obs, action = self.policy_step(state, k, last_action)
        if not math.isfinite(action.sum()):  # float32 outputs: the sum overflows only through an infinity
            return obs, action, None, 0
        c, target = self.c, self._target
        np.multiply(c.action_scale, action, out=target)
        np.add(c.default_joint_pos, target, out=target)
        clipped = self.limiter(target, state, target)
        return obs, action, MotorCommand(q=target, dq=self._zeros, tau=self._zeros, kp=c.kp, kd=c.kd), clipped

    def _warm(self, state: RobotState, k: int, last_action: np.ndarray, cmd: MotorCommand | None) -> None:
        """The policy step's work without its effects (no history push, results discarded), run back to back in
        the last ``warm_s`` before a tick so the step's code and data (the policy's weights) are in the caches
        when the state arrives. The observer's and limiter's buffers are overwritten by the real step. Before the
        policy starts (the soft start), the heading alignment of the first policy step is computed too."""
        if not self.observer.started:
            self.observer.alignment(state)
        self.observer.frame(state, k, last_action)
        self.policy(self.history.buf.reshape(-1))
        self.limiter(self._target, state, self._scratch)
        if cmd is not None:
            self.iface.build(cmd)

    def run(self) -> RunResult:
        c, cfg, iface = self.c, self.cfg, self.iface
        n, d = c.num_joints, c.obs_size * c.history
        dt = c.control_dt
        steps = c.motion.get("frames", self.bundle.motion.num_frames)
        steps = min(int(steps), cfg.max_policy_steps or int(steps))
        log = _Log(n, d, capacity=steps + round((cfg.safety.soft_start_s + cfg.safety.settle_s
                                                 + cfg.safety.damping_s) / dt) + 64)  # fmt: skip
        phase, fault, message = Phase.WAIT, Fault.NONE, ""
        # a fault once the clip is done (the robot is already damped): logged and named, not the run's fault
        after_end = ""
        state: RobotState | None = None
        q_start = c.default_joint_pos
        t_phase = 0.0
        k = 0
        last_action = np.zeros(n)
        t0 = time.monotonic()
        next_tick = t0
        end_at = math.inf
        tick = -1
        warm = self._warm if cfg.warm_s > 0 and iface.realtime else None
        warm_cmd: MotorCommand | None = None
        with self._estop_sources(), _realtime(cfg.rt_priority if iface.realtime else 0) as rt_note:
            while True:
                tick += 1
                t_ctrl = (
                    tick * dt
                )  # phase timing runs on control ticks (the sim may run faster than real time)
                if iface.realtime:
                    next_tick += dt
                    delay = next_tick - time.monotonic()
                    if delay > 0 and warm is not None and phase in _WARM_PHASES and state is not None:
                        if delay > cfg.warm_s:
                            time.sleep(delay - cfg.warm_s)
                        while time.monotonic() < next_tick:
                            warm(state, min(k, steps - 1), last_action, warm_cmd)
                    elif delay > 0:
                        time.sleep(delay)
                    elif delay < -dt:  # overran by more than a period: do not try to catch up
                        next_tick = time.monotonic()
                t_tick = time.monotonic()
                try:
                    state = iface.read()
                except Exception as e:  # the transport failed: report it, then damp
                    state, fault, message = None, Fault.INTERFACE, f"reading the robot state failed: {e}"
                t_read = time.monotonic()
                now = t_read
                if fault == Fault.NONE:
                    fault, message = check_state(state, now, cfg.safety, t0, self.joints)
                bad_crc = getattr(iface, "bad_crc", 0)
                if (fault == Fault.STALE_STATE and bad_crc) or (
                    fault == Fault.NONE and bad_crc >= cfg.safety.bad_crc_limit
                ):
                    fault = Fault.BAD_CRC
                    message = f"robot states arrive with a wrong CRC ({bad_crc} rejected in a row)" + (
                        f"; {message}" if message else ""
                    )
                if fault == Fault.NONE and self._estop:
                    fault, message = Fault.ESTOP, self._estop
                logged = fault
                if phase == Phase.END and fault not in (Fault.NONE, Fault.ESTOP):
                    after_end = after_end or message
                    fault, message = Fault.NONE, ""
                obs = action = None
                t_obs = t_read
                if fault != Fault.NONE and phase not in (Phase.DAMPING,):
                    phase, end_at = Phase.DAMPING, t_ctrl + cfg.safety.damping_s
                if phase == Phase.WAIT and state is not None:
                    phase, t_phase, q_start = Phase.SOFT_START, t_ctrl, state.joint_pos.copy()
                if phase == Phase.SOFT_START and state is not None:
                    if t_ctrl - t_phase >= cfg.safety.soft_start_s + cfg.safety.settle_s - 1e-9:
                        phase = Phase.POLICY
                        self.observer.start(state)
                        last_action = self.initial_action()
                if phase == Phase.POLICY and state is not None and k >= steps:
                    phase, end_at = Phase.END, t_ctrl + cfg.safety.damping_s
                cmd: MotorCommand | None = None
                clipped = 0
                if phase == Phase.SOFT_START and state is not None:
                    target = soft_start_targets(
                        q_start, self.start_pose, t_ctrl - t_phase, cfg.safety.soft_start_s
                    )
                    clipped = self.limiter(target, state, target)
                    cmd = warm_cmd = MotorCommand.position(target, c.kp, c.kd)
                elif phase == Phase.POLICY and state is not None:
                    obs, action, cmd, clipped = self.policy_command(state, k, last_action)
                    t_obs = time.monotonic()
                    if cmd is None:
                        fault, message = Fault.NAN_ACTION, f"policy output is not finite at frame {k}"
                        phase, end_at = Phase.DAMPING, t_ctrl + cfg.safety.damping_s
                    else:
                        last_action = action
                        warm_cmd = cmd
                        k += 1
                if phase in (Phase.DAMPING, Phase.END) or (phase == Phase.WAIT and fault != Fault.NONE):
                    q_hold = (
                        state.joint_pos if state is not None and state.is_finite() else c.default_joint_pos
                    )
                    cmd = MotorCommand.damping(q_hold, c.kd)
                msg = iface.build(cmd) if cmd is not None else None
                t_built = time.monotonic()
                if msg is not None and not cfg.dry_run:
                    try:
                        iface.publish(msg)
                    except Exception as e:
                        if fault == Fault.NONE:
                            fault, message = Fault.INTERFACE, f"sending the command failed: {e}"
                        break
                t_sent = time.monotonic()
                log.add(t_tick - t0, phase, k - 1 if obs is not None else -1, state, now, obs, action, cmd,
                        clipped, logged if phase == Phase.END else fault,
                        (t_read - t_tick, t_obs - t_read, t_built - t_read, t_sent - t_built))  # fmt: skip
                if phase in (Phase.DAMPING, Phase.END) and t_ctrl >= end_at - 1e-9:
                    break
        status = "completed" if fault == Fault.NONE else ("estop" if fault == Fault.ESTOP else "fault")
        if status == "completed":
            message = f"tracked {k} reference frames" + (f"; then, damped: {after_end}" if after_end else "")
        meta = {
            "status": status,
            "fault": fault.name,
            "message": message,
            "policy_steps": k,
            "dry_run": cfg.dry_run,
            "interface": type(iface).__name__,
            "robot": iface.robot,
            "control_dt": dt,
            "bundle": str(self.bundle.root),
            "policy_sha256": c.policy["sha256"],
            "motion_sha256": c.motion["sha256"],
            "rt_priority": rt_note,
        }
        return RunResult(status, fault, message, k, log.arrays(meta))


# the pre-tick warm-up also runs in the soft start, so the first policy tick finds the step's code and data hot
_WARM_PHASES = (Phase.SOFT_START, Phase.POLICY)

_LOG_SCALARS: dict[str, type] = {"t": np.float64, "phase": np.int64, "frame": np.int64, "fault": np.int64, "clipped": np.int64,
                 "state_tick": np.int64, "state_age_ms": np.float64, "read_ms": np.float64,
                 "obs_infer_ms": np.float64, "compute_ms": np.float64, "send_ms": np.float64}  # fmt: skip


class _Log:
    """Per-tick rows of the run log (see pipeline/deploy/README.md), written into preallocated arrays (grown by
    doubling when a run outlasts ``capacity``): a tick copies its values and allocates nothing."""

    def __init__(self, n: int, d: int, capacity: int = 1024) -> None:
        self.widths = {"joint_pos": n, "joint_vel": n, "joint_tau": n, "imu_quat": 4, "imu_gyro": 3, "imu_acc": 3,
                       "obs": d, "action": n, "cmd_q": n, "cmd_kp": n, "cmd_kd": n}  # fmt: skip
        self.size = 0
        self.cols: dict[str, np.ndarray] = {}
        self._alloc(max(1, capacity))

    def _alloc(self, capacity: int) -> None:
        cols: dict[str, np.ndarray] = {k: np.zeros(capacity, dt) for k, dt in _LOG_SCALARS.items()}
        cols.update({k: np.full((capacity, w), np.nan) for k, w in self.widths.items()})
        for k, old in self.cols.items():
            cols[k][: self.size] = old[: self.size]
        self.cols = cols
        self.capacity = capacity

    def add(self, t: float, phase: Phase, frame: int, state: RobotState | None, now: float,
            obs: np.ndarray | None, action: np.ndarray | None, cmd: MotorCommand | None, clipped: int,
            fault: Fault, times: tuple[float, float, float, float]) -> None:  # fmt: skip
        if self.size == self.capacity:
            self._alloc(2 * self.capacity)
        i, c = self.size, self.cols
        self.size += 1
        for key, v in (("t", t), ("phase", phase), ("frame", frame), ("fault", fault), ("clipped", clipped),
                       ("read_ms", times[0] * 1e3), ("obs_infer_ms", times[1] * 1e3),
                       ("compute_ms", times[2] * 1e3), ("send_ms", times[3] * 1e3)):  # fmt: skip
            c[key][i] = v
        if state is None:
            c["state_tick"][i], c["state_age_ms"][i] = -1, np.nan
        else:
            c["state_tick"][i], c["state_age_ms"][i] = state.tick, (now - state.stamp) * 1e3
            for key, a in (("joint_pos", state.joint_pos), ("joint_vel", state.joint_vel),
                           ("joint_tau", state.joint_tau), ("imu_quat", state.imu_quat),
                           ("imu_gyro", state.imu_gyro), ("imu_acc", state.imu_acc)):  # fmt: skip
                c[key][i] = a
        if obs is not None:
            c["obs"][i] = obs
        if action is not None:
            c["action"][i] = action
        if cmd is not None:
            c["cmd_q"][i], c["cmd_kp"][i], c["cmd_kd"][i] = cmd.q, cmd.kp, cmd.kd

    def arrays(self, meta: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {k: v[: self.size].copy() for k, v in self.cols.items()}
        out["meta"] = meta
        return out


@contextlib.contextmanager
def _realtime(priority: int) -> Iterator[str]:
    """Run the calling thread under SCHED_FIFO at ``priority`` (if > 0 and allowed) and with the garbage
    collector off (objects alive so far frozen, so no collection pause lands in the loop); restore both after.
    Yields what was applied, for the log's meta."""
    note = "off"
    previous = None
    if priority > 0:
        try:
            previous = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            note = f"SCHED_FIFO {priority}"
        except (AttributeError, OSError) as e:  # not Linux, or not permitted (needs CAP_SYS_NICE)
            previous, note = None, f"not applied ({e})"
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield note
    finally:
        if gc_was_enabled:
            gc.enable()
        gc.unfreeze()
        if previous is not None:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, previous[0], previous[1])


def save_log(path: str | Path, log: dict[str, Any]) -> None:
    save_npz(path, LOG_FORMAT, LOG_VERSION, log)
