"""Task and constraint functions of the IK: values and their Jacobians at one configuration.

Each function reads a :class:`~pipeline.retarget.kinematics.Frame` (updated at ``q``) and returns the value and
its Jacobian with respect to a tangent step ``dq`` (nv,), ``q' = integrate(q, dq)``; tests compare every
Jacobian with finite differences. The IK's hot path computes the same quantities in compiled code
(:mod:`pipeline.retarget.kernels`); tests check it against these functions.
"""

from __future__ import annotations

import numpy as np

from pipeline.retarget.kinematics import Frame


def keypoints(frame: Frame, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World keypoint positions (K, 3) and Jacobians (K, 3, nv)."""
    kin = frame.kin
    slot = kin.kp_slot if idx is None else kin.kp_slot[idx]
    local = kin.kp_local if idx is None else kin.kp_local[idx]
    x = frame.points(slot, local)
    return x, frame.point_jacobians(slot, x)


def orientation_error(
    frame: Frame, idx: np.ndarray, target_rot_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame rotation error ``log(R_target^T R)`` (O, 3) of keypoint bodies ``idx`` and its Jacobian (O, 3, nv).

    ``target_rot_w``: (O, 3, 3). d/dq log(E), E = R_t^T R, is Jlog3(E) R^T J_w. (A loop over pinocchio's log3 and
    Jlog3 is ~3x faster than the same maths vectorised in numpy for the handful of orientation tasks.)
    """
    import pinocchio as pin

    kin = frame.kin
    slot = kin.kp_slot[idx]
    rot = frame.rot[slot] @ kin.kp_rot_local[idx]
    rt_jw = rot.transpose(0, 2, 1) @ frame.rotation_jacobians(slot)  # (O, 3, nv) body-frame J_w
    e = target_rot_w.transpose(0, 2, 1) @ rot
    err = np.empty((len(idx), 3))
    jlog = np.empty((len(idx), 3, 3))
    for o in range(len(idx)):
        err[o] = pin.log3(e[o])
        jlog[o] = pin.Jlog3(e[o])
    return err, jlog @ rt_jw


def floor_clearance(frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Height above the floor of every capsule's lowest end sphere.

    Returns (clearance (2G,), Jacobian (2G, nv), geom index (2G,)): clearance = z_end - radius; a capsule's
    lowest point is one of its two end spheres' bottoms.
    """
    caps = frame.kin.capsules
    slot = np.concatenate([caps.slot, caps.slot])
    local = np.concatenate([caps.a_local, caps.b_local])
    x = frame.points(slot, local)
    rad = np.concatenate([caps.radius, caps.radius])
    geom = np.concatenate([np.arange(len(caps.slot))] * 2)
    return x[:, 2] - rad, frame.point_z_jacobians(slot, x), geom


def sole_points(frame: Frame, foot: int, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sole points ``which`` (0 heel, 1 centre, 2 toe) of foot ``foot`` (0 left, 1 right): (P, 3), (P, 3, nv)."""
    kin = frame.kin
    slot = np.full(len(which), kin.sole_slot[foot])
    x = frame.points(slot, kin.sole_local[foot, which])
    return x, frame.point_jacobians(slot, x)


def segment_closest_points(
    p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closest points between segments [p1, q1] and [p2, q2] (each (P, 3)); returns parameters s, t (P,).

    Vectorised form of the classic clamped solution (Ericson, Real-Time Collision Detection, 5.1.9); a segment
    of zero length is a point.
    """
    eps = 1e-12
    d1 = q1 - p1
    d2 = q2 - p2
    r = p1 - p2
    v = np.stack([d1, d2, r])  # one einsum for the five dot products
    gram = np.einsum("apk,bpk->abp", v, v)
    a, b, c = gram[0, 0], gram[0, 1], gram[0, 2]
    e, f = gram[1, 1], gram[1, 2]
    a_ok = a > eps
    e_ok = e > eps
    a_s = np.where(a_ok, a, 1.0)
    e_s = np.where(e_ok, e, 1.0)
    denom = a * e - b * b
    d_ok = denom > eps * np.maximum(a * e, eps)
    s = np.where(d_ok, np.clip((b * f - c * e) / np.where(d_ok, denom, 1.0), 0.0, 1.0), 0.0)
    s = np.where(e_ok, s, np.clip(-c / a_s, 0.0, 1.0))
    t = np.where(e_ok, (b * s + f) / e_s, 0.0)
    s = np.where(t < 0.0, np.clip(-c / a_s, 0.0, 1.0), np.where(t > 1.0, np.clip((b - c) / a_s, 0.0, 1.0), s))
    t = np.clip(t, 0.0, 1.0)
    s = np.where(a_ok, s, 0.0)
    t = np.where(e_ok, t, 0.0)
    return s, t


def capsule_ends(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """World end points (G, 3), (G, 3) of every collision capsule."""
    caps = frame.kin.capsules
    return frame.points(caps.slot, caps.a_local), frame.points(caps.slot, caps.b_local)


def pair_distances(
    frame: Frame, pairs: np.ndarray, ends: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distances (P,) between capsule pairs (P, 2) and their witness points c1, c2 (P, 3) each."""
    caps = frame.kin.capsules
    a, b = ends if ends is not None else capsule_ends(frame)
    i, j = pairs[:, 0], pairs[:, 1]
    s, t = segment_closest_points(a[i], b[i], a[j], b[j])
    c1 = a[i] + s[:, None] * (b[i] - a[i])
    c2 = a[j] + t[:, None] * (b[j] - a[j])
    dist = np.linalg.norm(c1 - c2, axis=1) - caps.radius[i] - caps.radius[j]
    return dist, c1, c2


def collision_distance(
    frame: Frame, pairs: np.ndarray, ends: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (P,) between capsule pairs and their Jacobians (P, nv).

    With witness points c1, c2 and n = (c1 - c2)/|c1 - c2|: grad d = n^T (J_c1 - J_c2), the points held fixed
    on their bodies (exact for the distance between convex shapes where the closest points are unique).
    """
    caps = frame.kin.capsules
    dist, c1, c2 = pair_distances(frame, pairs, ends)
    diff = c1 - c2
    norm = np.linalg.norm(diff, axis=1, keepdims=True)
    n = diff / np.maximum(norm, 1e-9)
    j1 = frame.point_jacobians(caps.slot[pairs[:, 0]], c1)
    j2 = frame.point_jacobians(caps.slot[pairs[:, 1]], c2)
    grad = np.einsum("pi,piv->pv", n, j1 - j2)
    return dist, grad
