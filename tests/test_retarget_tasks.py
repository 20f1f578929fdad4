"""Every IK task Jacobian against central finite differences at random configurations within the limits."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from pipeline.retarget import tasks
from pipeline.retarget.kinematics import Frame, robot_kinematics

EPS = 1e-6


@pytest.fixture(scope="module")
def kin():
    return robot_kinematics("g1")


def random_q(kin, rng: np.random.Generator) -> np.ndarray:
    q = kin.q_default.copy()
    q[:3] = rng.normal(scale=0.3, size=3) + np.array([0, 0, 0.8])
    quat = rng.normal(size=4)
    q[3:7] = quat / np.linalg.norm(quat)
    q[7:] = rng.uniform(kin.lower + 0.01, kin.upper - 0.01)
    return q


def fd_jacobian(kin, q: np.ndarray, fn) -> np.ndarray:
    """(…, nv) central differences of fn(Frame) over tangent directions at q."""
    fr = Frame(kin)
    cols = []
    for i in range(kin.nv):
        d = np.zeros(kin.nv)
        d[i] = EPS
        plus = fn(fr.update(pin.integrate(kin.model, q, d)))
        minus = fn(fr.update(pin.integrate(kin.model, q, -d)))
        cols.append((plus - minus) / (2 * EPS))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("seed", range(4))
def test_keypoint_jacobians(kin, seed):
    q = random_q(kin, np.random.default_rng(seed))
    _, jac = tasks.keypoints(Frame(kin).update(q))
    num = fd_jacobian(kin, q, lambda fr: tasks.keypoints(fr)[0])
    np.testing.assert_allclose(jac, num, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_sole_point_jacobians(kin, seed):
    q = random_q(kin, np.random.default_rng(10 + seed))
    which = np.array([0, 1, 2])
    for foot in (0, 1):
        _, jac = tasks.sole_points(Frame(kin).update(q), foot, which)
        num = fd_jacobian(kin, q, lambda fr, foot=foot: tasks.sole_points(fr, foot, which)[0])
        np.testing.assert_allclose(jac, num, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_orientation_jacobians(kin, seed):
    rng = np.random.default_rng(20 + seed)
    q = random_q(kin, rng)
    idx = np.arange(len(kin.keypoint_names))
    fr = Frame(kin).update(q)
    rot = fr.rot[kin.kp_slot] @ kin.kp_rot_local
    # Errors up to ~2 rad (log is singular at pi).
    target = np.stack([r @ pin.exp3(rng.uniform(-1.1, 1.1, size=3)) for r in rot])
    _, jac = tasks.orientation_error(Frame(kin).update(q), idx, target)
    num = fd_jacobian(kin, q, lambda fr: tasks.orientation_error(fr, idx, target)[0])
    np.testing.assert_allclose(jac, num, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_floor_clearance_jacobian(kin, seed):
    q = random_q(kin, np.random.default_rng(30 + seed))
    _, jac, _ = tasks.floor_clearance(Frame(kin).update(q))
    num = fd_jacobian(kin, q, lambda fr: tasks.floor_clearance(fr)[0])
    np.testing.assert_allclose(jac, num, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_collision_distance_jacobian(kin, seed):
    """Where the closest points are unique (no parallel segments), grad d = n^T (J_c1 - J_c2) is exact."""
    q = random_q(kin, np.random.default_rng(40 + seed))
    pairs = kin.capsules.pairs
    fr = Frame(kin).update(q)
    _, jac = tasks.collision_distance(fr, pairs)
    num = fd_jacobian(kin, q, lambda f: tasks.pair_distances(f, pairs)[0])
    # Skip degenerate pairs: (near) parallel capsules, whose witness points jump.
    a, b = tasks.capsule_ends(fr)
    d1 = b[pairs[:, 0]] - a[pairs[:, 0]]
    d2 = b[pairs[:, 1]] - a[pairs[:, 1]]
    cross = np.linalg.norm(np.cross(d1, d2), axis=1)
    length = np.linalg.norm(d1, axis=1) * np.linalg.norm(d2, axis=1)
    ok = (length < 1e-12) | (cross > 1e-3 * np.maximum(length, 1e-12))
    assert ok.sum() > 0.8 * len(pairs)
    np.testing.assert_allclose(jac[ok], num[ok], atol=1e-5)


def test_segment_closest_points_matches_brute_force():
    rng = np.random.default_rng(1)
    n = 200
    p1, q1, p2, q2 = (rng.normal(size=(n, 3)) for _ in range(4))
    q1[:20] = p1[:20]  # points
    q2[10:30] = p2[10:30]
    s, t = tasks.segment_closest_points(p1, q1, p2, q2)
    grid = np.linspace(0, 1, 401)
    for k in range(n):
        x = p1[k] + grid[:, None] * (q1[k] - p1[k])
        y = p2[k] + grid[:, None] * (q2[k] - p2[k])
        brute = np.linalg.norm(x[:, None] - y[None], axis=-1).min()
        got = np.linalg.norm(p1[k] + s[k] * (q1[k] - p1[k]) - p2[k] - t[k] * (q2[k] - p2[k]))
        assert got <= brute + 1e-9
        assert got >= brute - 5e-3


def test_capsules_match_mujoco_collision(kin):
    """The IK's capsule model gives MuJoCo's distances for the pairs MuJoCo reports."""
    import mujoco

    from pipeline.robot.model import mujoco_model, qpos_pin_to_mj

    model = mujoco_model("g1")
    data = mujoco.MjData(model)
    names = kin.capsules.names
    index = {(names[i], names[j]): k for k, (i, j) in enumerate(kin.capsules.pairs)}
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(40):
        q = random_q(kin, rng)
        fr = Frame(kin).update(q)
        dist, _, _ = tasks.pair_distances(fr, kin.capsules.pairs)
        data.qpos[:] = qpos_pin_to_mj(q)
        mujoco.mj_kinematics(model, data)
        mujoco.mj_collision(model, data)
        for c in data.contact[: data.ncon]:
            n1, n2 = model.geom(c.geom[0]).name, model.geom(c.geom[1]).name
            if "floor" in (n1, n2):
                continue
            k = index.get((n1, n2), index.get((n2, n1)))
            assert k is not None, f"MuJoCo tests {n1}/{n2}, the IK does not"
            assert dist[k] == pytest.approx(c.dist, abs=1e-6)
            checked += 1
    assert checked > 0
