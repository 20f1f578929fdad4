"""The runtime loop on the in-process MuJoCo robot: phases, safety, faults, e-stop, dry run, log."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.deploy.contract import load_bundle
from pipeline.deploy.interfaces import SimInterface
from pipeline.deploy.runtime import LOG_FORMAT, LOG_VERSION, Phase, RunConfig, Runtime, save_log
from pipeline.deploy.safety import Fault, JointRange, SafetyConfig, check_state, limit_targets, tilt_deg
from pipeline.deploy.state import RobotState
from pipeline.io import json_field, load_npz
from tests.deploy_fixtures import NanAfter, TrackReference, make_bundle

FAST = SafetyConfig(soft_start_s=0.4, settle_s=0.1, damping_s=0.2)


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("b") / "track", TrackReference(3), history=3, seconds=1.0)


def _run(bundle: Path, *, hold_s: float = 5.0, cfg: RunConfig | None = None, realtime: bool = False):
    iface = SimInterface(control_dt=0.02, hold_s=hold_s, realtime=realtime)
    return Runtime(load_bundle(bundle), iface, cfg or RunConfig(safety=FAST, keyboard=False)).run(), iface


def test_completed_run_commands_the_reference(track: Path, tmp_path: Path) -> None:
    result, _ = _run(track)
    b = load_bundle(track)
    log = result.log
    assert result.ok and result.policy_steps == b.motion.num_frames
    phases = log["phase"]
    assert phases[0] == Phase.SOFT_START and phases[-1] == Phase.END
    assert list(np.unique(phases)) == [Phase.SOFT_START, Phase.POLICY, Phase.END]
    pol = phases == Phase.POLICY
    # the exact-replay policy reads ref_joint_pos of the newest history frame: targets = reference (float32)
    np.testing.assert_allclose(log["cmd_q"][pol], b.motion.joint_pos[log["frame"][pol]], atol=2e-6)
    assert np.array_equal(log["frame"][pol], np.arange(b.motion.num_frames))
    # each row of the log holds that step's observation (newest history frame last; it starts with ref_joint_pos)
    d, n = b.contract.obs_size, b.contract.num_joints
    newest = log["obs"][pol][:, 2 * d : 2 * d + n]
    assert np.array_equal(newest, b.motion.joint_pos[log["frame"][pol]].astype(np.float32))
    # soft start: from the measured pose to the default pose, smoothly
    ss = np.flatnonzero(phases == Phase.SOFT_START)
    np.testing.assert_allclose(log["cmd_q"][ss[0]], log["joint_pos"][ss[0]], atol=1e-9)
    np.testing.assert_allclose(log["cmd_q"][ss[-1]], b.contract.default_joint_pos, atol=1e-9)
    assert np.abs(np.diff(log["cmd_q"][ss], axis=0)).max() < 0.05
    # end: damping (kp = 0)
    assert (log["cmd_kp"][phases == Phase.END] == 0).all()
    # the robot followed (PD on a held base): joint error small at the end of the motion
    assert np.abs(log["joint_pos"][pol][-1] - b.motion.joint_pos[-2]).max() < 0.1
    path = tmp_path / "run.npz"
    save_log(path, log)
    back = load_npz(path, LOG_FORMAT, LOG_VERSION)
    assert (
        json_field(back, "meta")["status"] == "completed" and back["obs"].shape[1] == 3 * b.contract.obs_size
    )


def test_nan_policy_output_ends_in_damping(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "nan", NanAfter(), seconds=1.0)
    result, _ = _run(bundle)
    log = result.log
    assert result.status == "fault" and result.fault == Fault.NAN_ACTION
    assert "policy output is not finite at frame 1" in result.message
    after = np.flatnonzero(log["fault"] == Fault.NAN_ACTION)
    assert after.size and (log["cmd_kp"][after] == 0).all() and (log["cmd_kd"][after] > 0).all()
    assert np.isfinite(log["cmd_q"][after]).all()


def test_fall_is_detected_and_damped(track: Path) -> None:
    result, _ = _run(track, hold_s=0.0, cfg=RunConfig(safety=SafetyConfig(soft_start_s=3.0), keyboard=False))
    assert result.fault == Fault.TILT and "fall detected" in result.message
    assert (result.log["cmd_kp"][result.log["phase"] == Phase.DAMPING] == 0).all()


def test_sigint_is_an_estop(track: Path) -> None:
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the tests run as a background job
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        result, _ = _run(
            track, realtime=True, cfg=RunConfig(safety=SafetyConfig(soft_start_s=2.0), keyboard=False)
        )
    finally:
        timer.cancel()
    assert result.status == "estop" and result.message == "e-stop: SIGINT"
    assert result.policy_steps == 0 and (result.log["cmd_kp"][-5:] == 0).all()
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_dry_run_publishes_nothing(track: Path) -> None:
    result, iface = _run(track, cfg=RunConfig(dry_run=True, safety=FAST, keyboard=False))
    assert result.ok and result.log["meta"]["dry_run"]
    assert iface.sim.command is None and iface.sim.time == 0.0
    assert np.isfinite(result.log["cmd_q"][result.log["phase"] == Phase.POLICY]).all()


def test_limit_targets_bounds_the_torque_only() -> None:
    rng = np.random.default_rng(0)
    n = 29
    q, dq = rng.normal(size=n), rng.normal(size=n) * 3
    kp, kd, tmax = rng.uniform(10, 100, n), rng.uniform(1, 5, n), rng.uniform(5, 50, n)
    want = rng.normal(size=n) * 5
    target, clipped = limit_targets(want, q, dq, kp, kd, tmax)
    tau = kp * (target - q) - kd * dq
    assert clipped == np.count_nonzero(target != want) > 0
    assert (np.abs(tau) <= tmax + 1e-9).all()
    # a target the torque can follow is sent unchanged
    small = q + (kd * dq + 0.5 * tmax) / kp
    out, n_clipped = limit_targets(small, q, dq, kp, kd, tmax)
    assert n_clipped == 0 and np.array_equal(out, small)


def test_joint_past_its_range_is_a_fault() -> None:
    names = ("a", "b")
    joints = JointRange(names, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    cfg = SafetyConfig(joint_limit_margin=0.2)

    def state(q: list[float]) -> RobotState:
        return RobotState(0.0, 0, np.array(q), np.zeros(2), np.zeros(2), np.array([1.0, 0, 0, 0]),
                          np.zeros(3), np.zeros(3))  # fmt: skip

    assert check_state(state([1.15, -1.19]), 0.0, cfg, 0.0, joints) == (Fault.NONE, "")
    fault, message = check_state(state([0.0, -1.25]), 0.0, cfg, 0.0, joints)
    assert fault == Fault.JOINT_LIMIT and "joint b" in message and "0.250 rad past" in message
    assert check_state(state([0.0, -1.25]), 0.0, cfg, 0.0) == (Fault.NONE, "")  # no range given: no check


def test_runtime_damps_when_a_joint_leaves_its_range(track: Path) -> None:
    """An encoder reading past the range (a slipped or miscalibrated joint) ends the run in damping."""

    class Slipped(SimInterface):
        def read(self) -> RobotState:
            s = super().read()
            if self.sim.time > 0.2:
                s.joint_pos[3] = self.sim.spec.default_pos[3] + 4.0  # the knee reads 4 rad off
            return s

    iface = Slipped(control_dt=0.02, hold_s=5.0)
    result = Runtime(load_bundle(track), iface, RunConfig(safety=FAST, keyboard=False)).run()
    assert result.fault == Fault.JOINT_LIMIT and "left_knee_joint" in result.message
    assert result.log["phase"][-1] == Phase.DAMPING


def test_tilt() -> None:
    assert tilt_deg(np.array([1.0, 0, 0, 0])) == 0.0
    q = np.array([np.cos(np.pi / 6), np.sin(np.pi / 6), 0, 0])  # 60 deg about x
    assert abs(tilt_deg(q) - 60.0) < 1e-9


def test_key_on_a_tty_is_an_estop(track: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pty

    master, slave = pty.openpty()
    tty_in = os.fdopen(slave, "r")
    monkeypatch.setattr("sys.stdin", tty_in)
    iface = SimInterface(control_dt=0.02, hold_s=5.0, realtime=True)
    cfg = RunConfig(safety=SafetyConfig(soft_start_s=2.0, damping_s=0.2))  # keyboard on (the default)
    runtime = Runtime(load_bundle(track), iface, cfg)
    timer = threading.Timer(0.7, lambda: os.write(master, b"q"))  # after the key watcher set cbreak mode
    timer.start()
    threads = {t.ident for t in threading.enumerate()}
    try:
        result = runtime.run()
        left = {t.ident for t in threading.enumerate() if t.is_alive()} - threads
    finally:
        timer.cancel()
        tty_in.close()
        os.close(master)
    assert result.status == "estop" and result.message == "e-stop: key 'q'"
    assert not left  # the key watcher (blocked in select without a timeout) ended with the run


def test_soft_start_to_the_reference_first_frame(track: Path) -> None:
    result, _ = _run(track, cfg=RunConfig(safety=FAST, keyboard=False, start_pose="reference"))
    log = result.log
    ss = np.flatnonzero(log["phase"] == Phase.SOFT_START)
    assert result.ok
    np.testing.assert_allclose(log["cmd_q"][ss[-1]], load_bundle(track).motion.joint_pos[0], atol=1e-9)


def test_sim_robot_stands_in_the_reference_first_frame(tmp_path: Path) -> None:
    """``SimRobot.stand_at_start`` (sim2sim's and ``mimic deploy --robot sim --start-pose reference``'s start)
    puts the root where the reference has it, though the bundle carries only the anchor's pose."""
    from pipeline.deploy.simrobot import SimRobot
    from pipeline.learn.export import export_bundle
    from pipeline.robot.motion import RobotMotion
    from pipeline.robot.spec import load_robot
    from tests.deploy_fixtures import ROBOT, sway_motion

    sway = sway_motion(0.5)
    qpos = np.concatenate([sway.root_pos_w, sway.root_quat_w, sway.dof_pos], 1)
    yaw, pitch = 0.7, 0.1
    qpos[:, :3] += [0.3, -0.2, -0.02]
    qpos[:, 3:7] = [np.cos(yaw / 2) * np.cos(pitch / 2), -np.sin(yaw / 2) * np.sin(pitch / 2),
                    np.cos(yaw / 2) * np.sin(pitch / 2), np.sin(yaw / 2) * np.cos(pitch / 2)]  # fmt: skip
    qpos[:, 7 + load_robot(ROBOT).joint_names.index("waist_yaw_joint")] = 0.3
    motion = RobotMotion.from_qpos(ROBOT, qpos, sway.fps)
    export_bundle(TrackReference(1), None, motion, tmp_path / "b", history=1)
    sim = SimRobot(ROBOT)
    sim.stand_at_start(load_bundle(tmp_path / "b"))
    np.testing.assert_allclose(sim.data.qpos[:3], qpos[0, :3], atol=1e-9)
    q = sim.data.qpos[3:7]
    assert abs(abs(float(q @ qpos[0, 3:7])) - 1.0) < 1e-9  # the same rotation
    np.testing.assert_allclose(sim.data.qpos[7:], qpos[0, 7:], atol=1e-12)
    assert not sim.data.qvel.any()


def test_fault_after_the_clip_is_logged_but_the_run_completed(track: Path) -> None:
    """The damped robot tipping over after the last frame is not a tracking failure: the run completes, the
    message names it, and the log keeps it."""
    end = FAST.soft_start_s + FAST.settle_s + load_bundle(track).motion.num_frames * 0.02

    class TipsAfterTheEnd(SimInterface):
        def read(self) -> RobotState:
            s = super().read()
            if self.sim.time > end + 0.06:
                s.imu_quat[:] = [np.cos(0.7), np.sin(0.7), 0.0, 0.0]  # 80 deg
            return s

    result = Runtime(load_bundle(track), TipsAfterTheEnd(control_dt=0.02, hold_s=5.0),
                     RunConfig(safety=FAST, keyboard=False)).run()  # fmt: skip
    assert result.ok and result.policy_steps == load_bundle(track).motion.num_frames
    assert "then, damped: fall detected" in result.message
    log = result.log
    assert (log["fault"][log["phase"] == Phase.END] == Fault.TILT).any()
    assert (log["fault"][log["phase"] == Phase.POLICY] == Fault.NONE).all()
