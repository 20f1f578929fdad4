"""The Unitree low-level transport: ``rt/lowcmd`` / ``rt/lowstate`` (unitree_hg LowCmd_/LowState_, CRC32)
over CycloneDDS 0.10.x, with the Unitree SDK's message types and CRC routine.

The participant is created like the SDK's ``ChannelFactoryInitialize(domain, iface)`` (same CycloneDDS
configuration), but per object rather than as a process-wide singleton, so one process can hold several
domains (tests use a random domain id each). Messages go on the wire through
:mod:`pipeline.deploy.cdr` (numpy views, checked byte for byte against the SDK's serializer) and the CRC is the
SDK's C routine (``crc32_core``) over the message packed with numpy (checked equal to the SDK's ``CRC().Crc``).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from pipeline.deploy.cdr import Wire
from pipeline.deploy.state import MotorCommand, RobotState
from pipeline.errors import MimicError

NUM_MOTORS = 35  # unitree_hg messages carry 35 motor slots; the G1 29-DoF uses the first 29
LOWCMD_TOPIC = "rt/lowcmd"
LOWSTATE_TOPIC = "rt/lowstate"
MOTOR_MODE_ENABLE = 1

_CONFIG_IFACE = """<?xml version="1.0" encoding="UTF-8" ?><CycloneDDS><Domain Id="any"><General><Interfaces>
<NetworkInterface name="{iface}" priority="default" multicast="default"/></Interfaces></General></Domain></CycloneDDS>"""
_CONFIG_AUTO = """<?xml version="1.0" encoding="UTF-8" ?><CycloneDDS><Domain Id="any"><General><Interfaces>
<NetworkInterface autodetermine="true" priority="default" multicast="default"/></Interfaces></General></Domain>
</CycloneDDS>"""

_MOTOR_CMD = np.dtype(
    [("mode", "u1"), ("_p", "u1", 3), ("q", "<f4"), ("dq", "<f4"), ("tau", "<f4"), ("kp", "<f4"),
     ("kd", "<f4"), ("reserve", "<u4")]
)  # fmt: skip
LOWCMD_DTYPE = np.dtype(
    [("mode_pr", "u1"), ("mode_machine", "u1"), ("_p", "u1", 2), ("motor", _MOTOR_CMD, NUM_MOTORS),
     ("reserve", "<u4", 4), ("crc", "<u4")]
)  # fmt: skip
_MOTOR_STATE = np.dtype(
    [("mode", "u1"), ("_p", "u1", 3), ("q", "<f4"), ("dq", "<f4"), ("ddq", "<f4"), ("tau_est", "<f4"),
     ("temperature", "<i2", 2), ("vol", "<f4"), ("sensor", "<u4", 2), ("motorstate", "<u4"), ("reserve", "<u4", 4)]
)  # fmt: skip
LOWSTATE_DTYPE = np.dtype(
    [("version", "<u4", 2), ("mode_pr", "u1"), ("mode_machine", "u1"), ("_p", "u1", 2), ("tick", "<u4"),
     ("quaternion", "<f4", 4), ("gyroscope", "<f4", 3), ("accelerometer", "<f4", 3), ("rpy", "<f4", 3),
     ("temperature", "<i2"), ("_p2", "u1", 2), ("motor", _MOTOR_STATE, NUM_MOTORS),
     ("wireless_remote", "u1", 40), ("reserve", "<u4", 4), ("crc", "<u4")]
)  # fmt: skip
assert LOWCMD_DTYPE.itemsize == 1004 and LOWSTATE_DTYPE.itemsize == 2092


class DdsUnavailable(MimicError):
    exit_code = 2


def _sdk() -> Any:
    try:
        import unitree_sdk2py.idl.unitree_hg.msg.dds_ as hg
        from unitree_sdk2py.utils.crc import CRC
    except ImportError as e:
        raise DdsUnavailable(
            f"the DDS interface needs CycloneDDS 0.10 and the Unitree SDK ({e}); run `make setup`"
        ) from None
    return hg, CRC


_BITREV = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], np.uint8)
_BITREV_TABLE = _BITREV.tobytes()  # for bytes.translate


def crc32_words(words_be: bytes) -> int:
    """Unitree CRC32 of big-endian 32-bit words (:meth:`pipeline.deploy.cdr.Wire.crc_words`).

    The SDK's routine (``crc32_core``, bitwise, MSB first, poly 0x04C11DB7, init 0xFFFFFFFF, no final xor) is
    CRC-32/MPEG-2 over the big-endian words: zlib's table-driven reflected CRC-32 of the bit-reversed bytes
    (``bytes.translate``), bit-reversed back. tests/test_deploy_dds_codec.py checks it against the SDK's routine.
    """
    reflected = zlib.crc32(words_be.translate(_BITREV_TABLE)) ^ 0xFFFFFFFF
    return int.from_bytes(reflected.to_bytes(4, "little").translate(_BITREV_TABLE), "big")


def crc32(buf: np.ndarray) -> int:
    """Unitree CRC32 of a message in its C struct layout: over all 32-bit words but the last (the crc field)."""
    words = buf.view("<u4")[:-1]
    return crc32_words(words.astype(">u4").tobytes())


def wire_crc(wire: Wire) -> int:
    return crc32_words(wire.crc_words(LOWSTATE_DTYPE if wire.kind == "state" else LOWCMD_DTYPE))


class CommandWriter:
    """Encodes a MotorCommand as a LowCmd_ on the wire (one reusable buffer) with its CRC."""

    def __init__(self, num_joints: int) -> None:
        self.n = n = num_joints
        self.wire = Wire("cmd")
        mode = np.zeros(NUM_MOTORS, np.uint8)
        mode[:n] = MOTOR_MODE_ENABLE
        self.wire.set_mode(mode)
        v = self.wire.v
        self._fields = (v["m_q"][:n], v["m_dq"][:n], v["m_tau"][:n], v["m_kp"][:n], v["m_kd"][:n])
        self._mode_machine, self._crc = v["mode_machine"], v["crc"]

    def fill(self, cmd: MotorCommand, *, mode_machine: int = 0, crc_offset: int = 0) -> bytes:
        q, dq, tau, kp, kd = self._fields
        self._mode_machine[0] = mode_machine
        q[:], dq[:], tau[:], kp[:], kd[:] = cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd
        self._crc[0] = (wire_crc(self.wire) + crc_offset) & 0xFFFFFFFF
        return self.wire.bytes()


def command_from_wire(data: bytes, num_joints: int) -> tuple[MotorCommand, bool]:
    """(command, crc_ok) of a received LowCmd_; motors with mode 0 are off (kp = kd = 0)."""
    w = Wire("cmd", data)
    n, v = num_joints, w.v
    on = (w.mode[:n] != 0).astype(np.float64)
    cmd = MotorCommand(
        q=v["m_q"][:n].astype(np.float64),
        dq=v["m_dq"][:n].astype(np.float64),
        tau=v["m_tau"][:n].astype(np.float64) * on,
        kp=v["m_kp"][:n].astype(np.float64) * on,
        kd=v["m_kd"][:n].astype(np.float64) * on,
    )
    return cmd, wire_crc(w) == int(v["crc"][0])


class StateWriter:
    """Encodes simulated robot signals as a LowState_ on the wire with its CRC (the bridge's side)."""

    def __init__(self, num_joints: int) -> None:
        self.n = num_joints
        self.wire = Wire("state")
        mode = np.zeros(NUM_MOTORS, np.uint8)
        mode[:num_joints] = MOTOR_MODE_ENABLE
        self.wire.set_mode(mode)

    def fill(self, state: RobotState, *, crc_offset: int = 0) -> bytes:
        """``crc_offset`` != 0 corrupts the CRC (fault injection)."""
        n, v = self.n, self.wire.v
        w, x, y, z = (float(c) for c in state.imu_quat)
        v["m_q"][:n], v["m_dq"][:n], v["m_tau_est"][:n] = state.joint_pos, state.joint_vel, state.joint_tau
        v["tick"][0] = state.tick & 0xFFFFFFFF
        v["quaternion"][:], v["gyroscope"][:], v["accelerometer"][:] = (
            state.imu_quat,
            state.imu_gyro,
            state.imu_acc,
        )
        v["rpy"][:] = (
            np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)),
            np.arcsin(np.clip(2 * (w * y - z * x), -1, 1)),
            np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)),
        )
        v["crc"][0] = (wire_crc(self.wire) + crc_offset) & 0xFFFFFFFF
        return self.wire.bytes()


class StateReader:
    """Decodes received LowState_ samples through one reused buffer (:func:`state_from_wire` without the
    per-message setup of the numpy views)."""

    def __init__(self, num_joints: int) -> None:
        self.n = num_joints
        self.wire = Wire("state")

    def __call__(self, data: bytes, stamp: float) -> tuple[RobotState, bool]:
        self.wire.load(data)
        return _state(self.wire, self.n, stamp)


def state_from_wire(data: bytes, num_joints: int, stamp: float) -> tuple[RobotState, bool]:
    """(state, crc_ok) of a received LowState_."""
    return _state(Wire("state", data), num_joints, stamp)


def _state(w: Wire, num_joints: int, stamp: float) -> tuple[RobotState, bool]:
    n, v = num_joints, w.v
    state = RobotState(
        stamp=stamp,
        tick=int(v["tick"][0]),
        joint_pos=v["m_q"][:n].astype(np.float64),
        joint_vel=v["m_dq"][:n].astype(np.float64),
        joint_tau=v["m_tau_est"][:n].astype(np.float64),
        imu_quat=v["quaternion"].astype(np.float64),
        imu_gyro=v["gyroscope"].astype(np.float64),
        imu_acc=v["accelerometer"].astype(np.float64),
    )
    return state, wire_crc(w) == int(v["crc"][0])


def take_raw(reader: Any, n: int = 1) -> list[bytes]:
    """Up to ``n`` received samples as wire bytes (valid data only), without Python deserialisation."""
    from cyclonedds._clayer import ddspy_take

    ret = ddspy_take(reader._ref, n)
    if isinstance(ret, int):
        raise DdsUnavailable(f"taking samples failed (DDS error {ret})")
    return [data for data, info in ret if info.valid_data]


def write_raw(writer: Any, data: bytes) -> None:
    """Publish wire bytes made by :class:`CommandWriter` / :class:`StateWriter`."""
    from cyclonedds._clayer import ddspy_write

    ret = ddspy_write(writer._ref, data)
    if ret < 0:
        raise DdsUnavailable(f"writing a sample failed (DDS error {ret})")


class Participant:
    """A CycloneDDS participant on ``domain`` bound to ``iface`` (None: let CycloneDDS choose)."""

    def __init__(self, domain: int, iface: str | None) -> None:
        _sdk()
        from cyclonedds.core import DDSException
        from cyclonedds.domain import Domain, DomainParticipant

        config = _CONFIG_AUTO if iface is None else _CONFIG_IFACE.format(iface=iface)
        try:
            self.domain = Domain(domain, config)
            self.participant = DomainParticipant(domain)
        except DDSException as e:
            raise DdsUnavailable(f"cannot join DDS domain {domain} on interface '{iface}': {e}") from None

    def writer(self, topic: str, kind: Any) -> Any:
        from cyclonedds.pub import DataWriter
        from cyclonedds.topic import Topic

        return DataWriter(self.participant, Topic(self.participant, topic, kind))

    def reader(self, topic: str, kind: Any, *, depth: int = 1) -> Any:
        """A reader that keeps the newest ``depth`` samples (1: a take returns the latest state only)."""
        from cyclonedds.qos import Policy, Qos
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        qos = Qos(Policy.History.KeepLast(depth))
        return DataReader(self.participant, Topic(self.participant, topic, kind), qos=qos)


def lowstate_type() -> Any:
    return _sdk()[0].LowState_


def lowcmd_type() -> Any:
    return _sdk()[0].LowCmd_
