"""Rotation helpers. Quaternions are (w, x, y, z) everywhere; scipy's (x, y, z, w) never leaks out.

scipy is imported only by the helpers that use it: the numpy-only ones (quat_mul, quat_conj, quat_rotate,
yaw_quat, finite_difference) serve the deploy runtime, which does not install scipy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.spatial.transform import Rotation


def to_rotation(quat_wxyz: np.ndarray) -> Rotation:
    from scipy.spatial.transform import Rotation

    q = np.asarray(quat_wxyz, dtype=np.float64)
    return Rotation.from_quat(q[..., [1, 2, 3, 0]].reshape(-1, 4))


def from_rotation(rot: Rotation, shape: tuple[int, ...] = ()) -> np.ndarray:
    """(…, 4) wxyz quaternions with w >= 0, reshaped to ``shape + (4,)``."""
    q = rot.as_quat()[..., [3, 0, 1, 2]]
    q = np.where(q[..., :1] < 0, -q, q)
    return q.reshape((*shape, 4)) if shape else q


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (…, 4) wxyz quaternions, broadcasting."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (…, 3) vectors by (…, 4) wxyz quaternions (broadcasting)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * np.cross(xyz, v)
    return v + w * t + np.cross(xyz, t)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(…, 4) wxyz -> (…, 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    shape = q.shape[:-1]
    return to_rotation(q).as_matrix().reshape((*shape, 3, 3))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    m = np.asarray(m, dtype=np.float64)
    shape = m.shape[:-2]
    return from_rotation(Rotation.from_matrix(m.reshape(-1, 3, 3)), shape)


def yaw_quat(yaw: np.ndarray | float) -> np.ndarray:
    """Rotation about +z by ``yaw`` radians, as wxyz."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], axis=-1)


def angular_velocity(quat_w: np.ndarray, fps: float) -> np.ndarray:
    """World-frame angular velocity (T, …, 3) in rad/s of a (T, …, 4) quaternion track (central differences)."""
    q = np.asarray(quat_w, dtype=np.float64)
    shape = q.shape[:-1]
    if q.shape[0] < 2:
        return np.zeros((*shape, 3))
    a = to_rotation(q[1:])
    b = to_rotation(q[:-1])
    fwd = (a * b.inv()).as_rotvec().reshape((q.shape[0] - 1, *shape[1:], 3)) * fps
    out = np.empty((*shape, 3))
    out[1:-1] = 0.5 * (fwd[1:] + fwd[:-1])
    out[0] = fwd[0]
    out[-1] = fwd[-1]
    return out


def finite_difference(x: np.ndarray, fps: float) -> np.ndarray:
    """Time derivative along axis 0 (central inside, one-sided at the ends)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        return np.zeros_like(x)
    return np.gradient(x, 1.0 / fps, axis=0)
