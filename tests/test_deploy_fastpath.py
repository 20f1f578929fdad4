"""The runtime's single-robot fast paths against the definitions they replace, on random inputs: equal outputs.

- Observer.frame (floats, one buffer) vs the batched training function actor_observation (B = 1): bit-identical.
- TargetLimiter vs limit_targets; Runtime.policy_command vs the composition it replaces.
- The CRC (zlib over translated bytes, gathered with a precomputed index) vs a bitwise MSB-first CRC-32 written
  from the SDK's definition; reused codec buffers vs fresh ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline.deploy import dds
from pipeline.deploy.cdr import Wire
from pipeline.deploy.contract import ObsTerm, load_bundle
from pipeline.deploy.interfaces import SimInterface
from pipeline.deploy.observation import AnchorChain, align_yaw
from pipeline.deploy.observer import Observer
from pipeline.deploy.runtime import RunConfig, Runtime
from pipeline.deploy.safety import TargetLimiter, limit_targets, tilt_deg
from pipeline.deploy.state import MotorCommand, RobotState
from tests.deploy_fixtures import make_bundle, mlp

N = 29


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("fast") / "b", mlp(2), history=2, seconds=1.0)


def _state(rng: np.random.Generator, default: np.ndarray, spread: float = 0.5) -> RobotState:
    quat = rng.normal(size=4)
    return RobotState(0.0, int(rng.integers(0, 1000)), default + rng.normal(size=N) * spread,
                      rng.normal(size=N) * 3, rng.normal(size=N), quat / np.linalg.norm(quat),
                      rng.normal(size=3), rng.normal(size=3))  # fmt: skip


@pytest.mark.parametrize("variant", ["contract", "scaled", "subset"])
def test_observer_fast_path_is_bit_identical(bundle: Path, variant: str) -> None:
    b = load_bundle(bundle)
    c = b.contract
    if (
        variant == "scaled"
    ):  # every term scaled differently: the fast path must scale as actor_observation does
        terms = tuple(ObsTerm(t.name, t.size, 0.25 + 0.37 * i) for i, t in enumerate(c.obs_terms))
        c = dataclasses.replace(c, obs_terms=terms)
    if variant == "subset":  # a layout with some terms left out and others reordered
        by_name = {t.name: t for t in c.obs_terms}
        names = ("joint_vel", "projected_gravity_b", "ref_joint_pos", "last_action", "anchor_ori_error")
        c = dataclasses.replace(c, obs_terms=tuple(by_name[n] for n in names))
    ob = Observer(c, b.motion, AnchorChain.from_json(c.anchor_chain))
    rng = np.random.default_rng(len(variant))
    compared = 0
    for i in range(400):
        state = _state(rng, c.default_joint_pos, spread=0.3 if i % 2 else 1.5)
        if i % 50 == 0:
            ob.start(state)  # a new heading alignment
            ref_w = b.motion.anchor_quat_w  # the reference path aligns all frames through align_yaw
            want = align_yaw(ref_w, ob.anchor_quat_w(state), ref_w[:1])
            np.testing.assert_array_equal(ob.ref_anchor_quat_w, want)
        last = rng.normal(size=N)
        k = int(rng.integers(0, b.motion.num_frames))
        fast = ob.frame(state, k, last).copy()
        ref = ob.frame_reference(state, k, last)
        assert fast.dtype == ref.dtype == np.float32
        np.testing.assert_array_equal(fast, ref)
        compared += 1
    anchor = ob.single.anchor_quat(tuple(state.imu_quat.tolist()), state.joint_pos.tolist())  # type: ignore[arg-type]
    assert np.array_equal(np.array(anchor), ob.anchor_quat_w(state)[0])  # float64, before the float32 cast
    assert compared == 400


def test_target_limiter_equals_limit_targets() -> None:
    rng = np.random.default_rng(0)
    kp, kd = rng.uniform(10, 100, N), rng.uniform(1, 5, N)
    tmax = rng.uniform(5, 50, N)
    limiter = TargetLimiter(kp, kd, tmax)
    out = np.empty(N)
    for i in range(300):
        state = _state(rng, np.zeros(N), spread=1.5)
        target = rng.normal(size=N) * (0.1 if i % 3 == 0 else 3.0)
        want, want_clipped = limit_targets(target, state.joint_pos, state.joint_vel, kp, kd, tmax)
        assert limiter(target, state, out) == want_clipped
        np.testing.assert_array_equal(out, want)
        inplace = target.copy()
        assert limiter(inplace, state, inplace) == want_clipped
        np.testing.assert_array_equal(inplace, want)


def test_policy_command_equals_the_plain_composition(bundle: Path) -> None:
    b = load_bundle(bundle)
    c = b.contract
    runtime = Runtime(b, SimInterface(control_dt=c.control_dt), RunConfig(keyboard=False))
    twin = Runtime(b, SimInterface(control_dt=c.control_dt), RunConfig(keyboard=False))
    rng = np.random.default_rng(2)
    last = runtime.initial_action()
    for k in range(30):
        state = _state(rng, c.default_joint_pos, spread=0.2)
        if k == 0:
            runtime.observer.start(state)
            twin.observer.start(state)
        obs, action, cmd, clipped = runtime.policy_command(state, k, last)
        obs_ref, action_ref = twin.policy_step(state, k, last)
        np.testing.assert_array_equal(obs, obs_ref)
        np.testing.assert_array_equal(action, action_ref)
        target, want_clipped = limit_targets(c.default_joint_pos + c.action_scale * action_ref, state.joint_pos,
                                             state.joint_vel, c.kp, c.kd, twin.max_torque)  # fmt: skip
        assert cmd is not None and clipped == want_clipped
        want = MotorCommand.position(target, c.kp, c.kd)
        for f in ("q", "dq", "tau", "kp", "kd"):
            np.testing.assert_array_equal(getattr(cmd, f), getattr(want, f))
        last = action.copy()


def _crc_bitwise(words: np.ndarray) -> int:
    """The SDK's crc32_core as written in its C source: MSB first, poly 0x04C11DB7, init 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for word in words.tolist():
        for bit in range(31, -1, -1):
            top = crc & 0x80000000
            crc = (crc << 1) & 0xFFFFFFFF
            if (word >> bit) & 1:
                top ^= 0x80000000
            if top:
                crc ^= 0x04C11DB7
    return crc


def test_crc_equals_the_bitwise_definition() -> None:
    rng = np.random.default_rng(4)
    for n in (2, 3, 17, 64):
        words = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        assert dds.crc32(words.view(np.uint8)) == _crc_bitwise(words[:-1])


def test_reused_codec_buffers_equal_fresh_ones() -> None:
    rng = np.random.default_rng(5)
    writer, reader = dds.CommandWriter(N), dds.StateReader(N)
    state_writer = dds.StateWriter(N)
    for i in range(20):
        cmd = MotorCommand(*(rng.normal(size=N) for _ in range(5)))
        data = writer.fill(cmd, mode_machine=i % 3)
        assert data == dds.CommandWriter(N).fill(cmd, mode_machine=i % 3)
        wire = Wire("cmd", data)
        packed = wire.packed(dds.LOWCMD_DTYPE)
        assert dds.wire_crc(wire) == dds.crc32(packed) == int(packed["crc"][0])
        sent = _state(rng, np.zeros(N))
        raw = state_writer.fill(sent, crc_offset=i % 2)
        got, ok = reader(raw, 1.5)
        want, want_ok = dds.state_from_wire(raw, N, 1.5)
        assert ok == want_ok == (i % 2 == 0)
        for f in ("joint_pos", "joint_vel", "joint_tau", "imu_quat", "imu_gyro", "imu_acc"):
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f))
        assert got.tick == want.tick and got.stamp == want.stamp == 1.5


def test_tilt_of_a_zero_quaternion_is_a_fall() -> None:
    assert tilt_deg(np.zeros(4)) == 180.0


def test_warm_up_and_priority_leave_the_run_unchanged(bundle: Path) -> None:
    """A real-time run with the pre-tick warm-up (and SCHED_FIFO where permitted) commands exactly what a plain
    run commands: the warm-up has no effect but on the caches (no history push, buffers overwritten)."""
    import os

    from pipeline.deploy.runtime import Phase
    from pipeline.deploy.safety import SafetyConfig

    safety = SafetyConfig(soft_start_s=0.2, settle_s=0.06, damping_s=0.06)
    logs = []
    for warm_s, prio in ((0.0, 0), (0.004, 1)):
        iface = SimInterface(control_dt=0.02, hold_s=5.0, realtime=True)
        cfg = RunConfig(safety=safety, keyboard=False, warm_s=warm_s, rt_priority=prio)
        result = Runtime(load_bundle(bundle), iface, cfg).run()
        assert result.ok
        logs.append(result.log)
    plain, warm = logs
    assert warm["meta"]["rt_priority"].startswith(("SCHED_FIFO 1", "not applied"))
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # restored
    pol = plain["phase"] == Phase.POLICY
    assert np.array_equal(pol, warm["phase"] == Phase.POLICY) and pol.sum() > 10
    for key in ("obs", "action", "cmd_q", "joint_pos"):
        np.testing.assert_array_equal(warm[key][pol], plain[key][pol])


def test_state_is_finite_equals_the_elementwise_check() -> None:
    rng = np.random.default_rng(6)
    for i in range(200):
        state = _state(rng, np.zeros(N), spread=100.0)
        if i % 2:
            field = ("joint_pos", "joint_vel", "imu_quat", "imu_gyro")[i // 2 % 4]
            getattr(state, field)[rng.integers(0, getattr(state, field).size)] = (np.nan, np.inf, -np.inf)[
                i % 3
            ]
        want = all(
            np.isfinite(getattr(state, f)).all() for f in ("joint_pos", "joint_vel", "imu_quat", "imu_gyro")
        )
        assert state.is_finite() == want
