"""Zero-copy wire codec of unitree_hg LowState_ / LowCmd_ (XCDR1, little endian) as numpy views.

CycloneDDS's Python binding (de)serialises these 35-motor structs field by field in Python (0.2–3 ms a message
depending on load), too slow for 500 Hz. The wire layout of these fixed-size types is plain: primitives aligned to
their size after a 4-byte encapsulation header. :class:`Wire` exposes every field as a strided numpy view over
one buffer. tests/test_deploy_dds_codec.py checks the bytes against the SDK's own serializer both ways.

The CRC is defined over the C struct layout (pipeline.deploy.dds.LOWSTATE_DTYPE / LOWCMD_DTYPE), which differs
from the wire layout by padding, so :meth:`Wire.packed` copies the fields into that layout for the CRC, and
:meth:`Wire.crc_words` gathers the CRC's input (the C layout's 32-bit words but the last, big-endian) with one
precomputed index into a reused buffer. The message buffer carries one extra zero byte that the gather reads for
the C layout's padding.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

HEADER = b"\x00\x01\x00\x00"  # CDR little endian, no options
N = 35

# field -> (dtype, offset of element 0, count per element, stride between motors or 0) ; offsets in the payload
_STATE: dict[str, tuple[str, int, int, int]] = {
    "version": ("<u4", 0, 2, 0),
    "mode_pr": ("u1", 8, 1, 0),
    "mode_machine": ("u1", 9, 1, 0),
    "tick": ("<u4", 12, 1, 0),
    "quaternion": ("<f4", 16, 4, 0),
    "gyroscope": ("<f4", 32, 3, 0),
    "accelerometer": ("<f4", 44, 3, 0),
    "rpy": ("<f4", 56, 3, 0),
    "temperature": ("<i2", 68, 1, 0),
    "m_q": ("<f4", 72, 1, 56),
    "m_dq": ("<f4", 76, 1, 56),
    "m_ddq": ("<f4", 80, 1, 56),
    "m_tau_est": ("<f4", 84, 1, 56),
    "m_temperature": ("<i2", 88, 2, 56),
    "m_vol": ("<f4", 92, 1, 56),
    "m_sensor": ("<u4", 96, 2, 56),
    "m_motorstate": ("<u4", 104, 1, 56),
    "m_reserve": ("<u4", 108, 4, 56),
    "wireless_remote": ("u1", 2028, 40, 0),
    "reserve": ("<u4", 2068, 4, 0),
    "crc": ("<u4", 2084, 1, 0),
}
_STATE_MODE = (70, 124, 56)  # motor 0's mode byte sits right after the IMU temperature; then every 56 bytes
_CMD: dict[str, tuple[str, int, int, int]] = {
    "mode_pr": ("u1", 0, 1, 0),
    "mode_machine": ("u1", 1, 1, 0),
    "m_q": ("<f4", 4, 1, 28),
    "m_dq": ("<f4", 8, 1, 28),
    "m_tau": ("<f4", 12, 1, 28),
    "m_kp": ("<f4", 16, 1, 28),
    "m_kd": ("<f4", 20, 1, 28),
    "m_reserve": ("<u4", 24, 1, 28),
    "reserve": ("<u4", 980, 4, 0),
    "crc": ("<u4", 996, 1, 0),
}
_CMD_MODE = (2, 28, 28)
SIZES = {"state": 2088, "cmd": 1000}


class Wire:
    """One message buffer (header + payload) with a numpy view per field; ``m_*`` views are (35, ...)."""

    def __init__(self, kind: str, data: bytes | None = None) -> None:
        fields, mode = (_STATE, _STATE_MODE) if kind == "state" else (_CMD, _CMD_MODE)
        self.kind = kind
        size = SIZES[kind]
        if data is not None and len(data) < 4 + size:
            raise ValueError(f"{kind} message of {len(data)} bytes, expected {4 + size}")
        self._ext = np.zeros(4 + size + 1, np.uint8)  # the last byte stays 0 (the C layout's padding)
        self.buf = self._ext[:-1]
        if data is None:
            self.buf[:4] = np.frombuffer(HEADER, np.uint8)
        else:
            self.buf[:] = np.frombuffer(data, np.uint8)[: 4 + size]
        self._words: np.ndarray | None = None
        self.v: dict[str, np.ndarray] = {}
        for name, (dt, off, count, stride) in fields.items():
            item = np.dtype(dt).itemsize
            if stride:
                shape: tuple[int, ...] = (N, count) if count > 1 else (N,)
                strides: tuple[int, ...] = (stride, item) if count > 1 else (stride,)
            else:
                shape, strides = ((count,) if count > 1 else (1,)), (item,)
            self.v[name] = np.ndarray(shape, dt, buffer=self.buf, offset=4 + off, strides=strides)
        first, second, stride = mode
        self.mode0 = np.ndarray((1,), "u1", buffer=self.buf, offset=4 + first)
        self.mode_rest = np.ndarray((N - 1,), "u1", buffer=self.buf, offset=4 + second, strides=(stride,))

    @property
    def mode(self) -> np.ndarray:
        return np.concatenate([self.mode0, self.mode_rest])

    def set_mode(self, values: Any) -> None:
        m = np.broadcast_to(np.asarray(values, np.uint8), (N,))
        self.mode0[0] = m[0]
        self.mode_rest[:] = m[1:]

    def bytes(self) -> bytes:
        return self.buf.tobytes()

    def load(self, data: builtins.bytes) -> None:
        """Replace the message with ``data`` (a received sample), keeping every view."""
        if len(data) < len(self.buf):
            raise ValueError(f"{self.kind} message of {len(data)} bytes, expected {len(self.buf)}")
        self.buf[:] = np.frombuffer(data, np.uint8, len(self.buf))

    def packed(self, dtype: np.dtype) -> np.ndarray:
        """The message in the C struct layout ``dtype`` (for the CRC): one gather of bytes."""
        return self._ext[_gather_index(self.kind, dtype)].view(dtype)

    def crc_words(self, dtype: np.dtype) -> builtins.bytes:
        """The CRC's input: the C layout ``dtype``'s 32-bit words but the last (the crc), each big-endian."""
        if self._words is None:
            self._words_idx = _word_index(self.kind, dtype)
            self._words = np.zeros(len(self._words_idx), np.uint8)
        np.take(self._ext, self._words_idx, out=self._words, mode="clip")
        return self._words.tobytes()


_WORDS: dict[tuple[str, np.dtype], np.ndarray] = {}


def _word_index(kind: str, dtype: np.dtype) -> np.ndarray:
    """:func:`_gather_index` without the last word, each word's bytes reversed (big-endian words)."""
    key = (kind, dtype)
    if key not in _WORDS:
        idx = _gather_index(kind, dtype)[: dtype.itemsize // 4 * 4 - 4]
        _WORDS[key] = np.ascontiguousarray(idx.reshape(-1, 4)[:, ::-1].ravel())
    return _WORDS[key]


_GATHER: dict[tuple[str, np.dtype], np.ndarray] = {}


def _gather_index(kind: str, dtype: np.dtype) -> np.ndarray:
    """For every byte of the C layout, the index of the wire byte holding it (padding: the extra zero byte)."""
    key = (kind, dtype)
    if key in _GATHER:
        return _GATHER[key]
    fields, (first, second, mstride) = (_STATE, _STATE_MODE) if kind == "state" else (_CMD, _CMD_MODE)
    idx = np.full(dtype.itemsize, 4 + SIZES[kind], np.int64)
    top: Any = dtype.fields
    motor_dt, motor_off = top["motor"][0].base, top["motor"][1]
    sub_fields: Any = motor_dt.fields

    def put(c_off: int, w_off: int, nbytes: int) -> None:
        idx[c_off : c_off + nbytes] = 4 + w_off + np.arange(nbytes)

    for name, (dt, off, count, stride) in fields.items():
        size = np.dtype(dt).itemsize * count
        if stride:
            sub = sub_fields[name[2:]][1]
            for i in range(N):
                put(motor_off + i * motor_dt.itemsize + sub, off + i * stride, size)
        else:
            put(top[name][1], off, size)
    mode = sub_fields["mode"][1]
    for i in range(N):
        put(motor_off + i * motor_dt.itemsize + mode, first if i == 0 else second + (i - 1) * mstride, 1)
    _GATHER[key] = idx
    return idx
