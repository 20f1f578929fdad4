"""The numpy wire codec of unitree_hg LowState_/LowCmd_ against the Unitree SDK's own serializer and CRC."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("unitree_sdk2py", reason="needs `make setup` (CycloneDDS 0.10 + Unitree SDK)")

from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowCmd_, unitree_hg_msg_dds__LowState_
from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_
from unitree_sdk2py.utils.crc import CRC

from pipeline.deploy import dds
from pipeline.deploy.cdr import Wire
from pipeline.deploy.state import MotorCommand, RobotState


def _f32(rng: np.random.Generator, *shape: int) -> list:
    return rng.normal(size=shape).astype(np.float32).tolist()


def _random_state(rng: np.random.Generator):
    s = unitree_hg_msg_dds__LowState_()
    s.version = [int(v) for v in rng.integers(0, 2**32, 2)]
    s.mode_pr, s.mode_machine, s.tick = 1, 5, int(rng.integers(0, 2**32))
    imu = s.imu_state
    imu.quaternion, imu.gyroscope, imu.accelerometer, imu.rpy = (
        _f32(rng, 4),
        _f32(rng, 3),
        _f32(rng, 3),
        _f32(rng, 3),
    )
    imu.temperature = int(rng.integers(-300, 300))
    for m in s.motor_state:
        m.mode = int(rng.integers(0, 256))
        m.q, m.dq, m.ddq, m.tau_est, m.vol = (float(np.float32(v)) for v in rng.normal(size=5))
        m.temperature = [int(v) for v in rng.integers(-100, 100, 2)]
        m.sensor = [int(v) for v in rng.integers(0, 2**32, 2)]
        m.motorstate = int(rng.integers(0, 2**32))
        m.reserve = [int(v) for v in rng.integers(0, 2**32, 4)]
    s.wireless_remote = bytes(rng.integers(0, 256, 40).astype(np.uint8))
    s.reserve = [int(v) for v in rng.integers(0, 2**32, 4)]
    s.crc = CRC().Crc(s)
    return s


def _random_cmd(rng: np.random.Generator):
    c = unitree_hg_msg_dds__LowCmd_()
    c.mode_pr, c.mode_machine = 0, 5
    for m in c.motor_cmd:
        m.mode = int(rng.integers(0, 2))
        m.q, m.dq, m.tau, m.kp, m.kd = (float(np.float32(v)) for v in rng.normal(size=5))
        m.reserve = int(rng.integers(0, 2**32))
    c.reserve = [int(v) for v in rng.integers(0, 2**32, 4)]
    c.crc = CRC().Crc(c)
    return c


@pytest.mark.parametrize("seed", range(5))
def test_sdk_bytes_decode_and_crc(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = _random_state(rng)
    data = s.serialize()
    w = Wire("state", data)
    assert w.bytes() == data[: len(w.bytes())]
    assert dds.wire_crc(w) == s.crc
    state, ok = dds.state_from_wire(data, 29, 0.0)
    assert ok and state.tick == s.tick
    np.testing.assert_array_equal(state.joint_pos, [m.q for m in s.motor_state[:29]])
    np.testing.assert_array_equal(state.imu_quat, s.imu_state.quaternion)
    np.testing.assert_array_equal(w.mode, [m.mode for m in s.motor_state])
    c = _random_cmd(rng)
    cmd, ok = dds.command_from_wire(c.serialize(), 29)
    assert ok
    on = np.array([m.mode for m in c.motor_cmd[:29]]) != 0
    np.testing.assert_array_equal(cmd.kp, np.where(on, [m.kp for m in c.motor_cmd[:29]], 0.0))


def test_our_bytes_are_what_the_sdk_writes() -> None:
    rng = np.random.default_rng(9)
    state = RobotState(0.0, 123456, rng.normal(size=29), rng.normal(size=29), rng.normal(size=29),
                       np.array([0.9, 0.1, -0.2, 0.3]) / np.linalg.norm([0.9, 0.1, -0.2, 0.3]),
                       rng.normal(size=3), rng.normal(size=3))  # fmt: skip
    data = dds.StateWriter(29).fill(state)
    msg = LowState_.deserialize(data)
    assert msg.serialize() == data and CRC().Crc(msg) == msg.crc
    assert msg.tick == 123456 and np.allclose([m.q for m in msg.motor_state[:29]], state.joint_pos, atol=1e-6)
    cmd = MotorCommand(*(rng.normal(size=29) for _ in range(5)))
    data = dds.CommandWriter(29).fill(cmd)
    msg = LowCmd_.deserialize(data)
    assert msg.serialize() == data and CRC().Crc(msg) == msg.crc
    assert [m.mode for m in msg.motor_cmd] == [1] * 29 + [0] * 6
    assert np.allclose([m.kd for m in msg.motor_cmd[:29]], cmd.kd, atol=1e-6)


def test_corrupted_crc_is_detected() -> None:
    rng = np.random.default_rng(1)
    cmd = MotorCommand(*(rng.normal(size=29) for _ in range(5)))
    assert not dds.command_from_wire(dds.CommandWriter(29).fill(cmd, crc_offset=1), 29)[1]
    data = bytearray(dds.CommandWriter(29).fill(cmd))
    data[40] ^= 0x10  # a flipped bit in motor 1's command
    assert not dds.command_from_wire(bytes(data), 29)[1]


def test_crc_equals_the_sdk_routine() -> None:
    import ctypes

    sdk = CRC().crc_lib.crc32_core
    rng = np.random.default_rng(3)
    for n in (2, 7, 251, 523):
        words = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        want = sdk(words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), n - 1)
        assert dds.crc32(words.view(np.uint8)) == want
