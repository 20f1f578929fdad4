"""The compiled IK kernels against their references: pinocchio (kinematics, log3/Jlog3) and the numpy task
functions (segment distances, the whole per-iteration QP)."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from pipeline.retarget import kernels, tasks
from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.ik import FLAT, FREE, HEEL, ROLL_LIFT, TOE, FrameSolver
from pipeline.retarget.kinematics import Frame, robot_kinematics
from pipeline.retarget.qp import INF


@pytest.fixture(scope="module")
def kin():
    return robot_kinematics("g1")


def random_q(kin, rng: np.random.Generator, height: float = 0.8) -> np.ndarray:
    q = kin.q_default.copy()
    q[:3] = rng.normal(scale=0.3, size=3) + np.array([0, 0, height])
    quat = rng.normal(size=4)
    q[3:7] = quat / np.linalg.norm(quat)
    q[7:] = rng.uniform(kin.lower + 0.01, kin.upper - 0.01)
    return q


def test_plant_codes_agree():
    assert (FREE, FLAT, HEEL, TOE) == (kernels.FREE, kernels.FLAT, kernels.HEEL, kernels.TOE)


@pytest.mark.parametrize("seed", range(5))
def test_forward_kinematics_matches_pinocchio(kin, seed):
    q = random_q(kin, np.random.default_rng(seed))
    fr = Frame(kin).update(q)
    data = kin.model.createData()
    pin.computeJointJacobians(kin.model, data, q)
    np.testing.assert_allclose(fr.J, data.J, atol=1e-12)
    for i in range(kin.model.njoints):
        np.testing.assert_allclose(fr.rot_all[i], data.oMi[i].rotation, atol=1e-12)
        np.testing.assert_allclose(fr.pos_all[i], data.oMi[i].translation, atol=1e-12)


def test_log3_and_jlog3_match_pinocchio():
    rng = np.random.default_rng(0)
    out = np.empty(3)
    jl = np.empty((3, 3))
    # Generic angles, tiny angles, and angles near pi (pinocchio switches formulas there).
    for angle in [*rng.uniform(0.0, np.pi, 20), 0.0, 1e-9, 3e-6, 1e-3, np.pi - 1e-3, np.pi - 1e-6]:
        axis = rng.normal(size=3)
        R = pin.exp3(angle * axis / np.linalg.norm(axis))
        theta = kernels.log3(R, out)
        ref = pin.log3(R)
        np.testing.assert_allclose(out, ref, atol=1e-9)
        assert theta == pytest.approx(np.linalg.norm(ref), abs=1e-9)
        kernels.jlog3(theta, out, jl)
        np.testing.assert_allclose(jl, pin.Jlog3(R), atol=1e-6 if angle > np.pi - 1e-2 else 1e-9)


def test_segment_params_match_the_vectorised_version():
    rng = np.random.default_rng(2)
    n = 300
    p1, q1, p2, q2 = (rng.normal(size=(n, 3)) for _ in range(4))
    q1[:20] = p1[:20]  # points
    q2[10:30] = p2[10:30]
    q2[40:50] = p2[40:50] + 2.0 * (q1[40:50] - p1[40:50])  # parallel segments
    s, t = tasks.segment_closest_points(p1, q1, p2, q2)
    got = np.array([kernels.segment_params(p1[k], q1[k], p2[k], q2[k]) for k in range(n)])
    np.testing.assert_allclose(got[:, 0], s, atol=1e-12)
    np.testing.assert_allclose(got[:, 1], t, atol=1e-12)


def reference_qp(solver: FrameSolver, q, q_prev, target_pos, target_rot, plant, shrink):
    """The QP of one iteration built from the numpy task functions (the formulation of pipeline.retarget.ik)."""
    kin, cfg = solver.kin, solver.cfg
    fr = Frame(kin).update(q)
    nv = kin.nv
    x, jx = tasks.keypoints(fr)
    wp = np.sqrt(cfg.position_weight * kin.kp_pos_weight)
    er, jr = tasks.orientation_error(fr, solver.rot_idx, target_rot)
    wr = solver.sqrt_wr
    A = np.concatenate([(wp[:, None, None] * jx).reshape(-1, nv), (wr[:, None, None] * jr).reshape(-1, nv)])
    r = np.concatenate([(wp[:, None] * (x - target_pos)).reshape(-1), (wr[:, None] * er).reshape(-1)])
    H = A.T @ A + np.diag(solver.reg)
    dprev = pin.difference(kin.model, q_prev, q)
    g = A.T @ r + cfg.previous_weight * dprev
    g[6:] += cfg.default_weight * (q[7:] - kin.q_default[7:])
    lo = np.maximum(kin.lower - q[7:], -solver.vmax - dprev[6:])
    hi = np.minimum(kin.upper - q[7:], solver.vmax - dprev[6:])
    step = cfg.max_step * shrink
    lb = np.concatenate([np.full(6, -cfg.max_root_step * shrink), np.minimum(np.maximum(lo, -step), 0.0)])
    ub = np.concatenate([np.full(6, cfg.max_root_step * shrink), np.maximum(np.minimum(hi, step), 0.0)])
    rows, lo_c, hi_c = [], [], []

    def keep_out(d, margin):
        return np.where(d < 0.0, margin, np.minimum(d, margin)) - d

    clear, jz, _ = tasks.floor_clearance(fr)
    near = clear < cfg.activation_distance
    rows.append(jz[near])
    lo_c.append(keep_out(clear[near], cfg.floor_margin))
    hi_c.append(np.full(near.sum(), INF))
    held_of = {FLAT: [0, 2], HEEL: [0], TOE: [2]}
    for f in range(2):
        if plant[f] == FREE:
            continue
        held = held_of[int(plant[f])]
        xs, js = tasks.sole_points(fr, f, np.arange(3))
        rows.append(js[held, 2])
        lo_c.append(np.full(len(held), -INF))
        hi_c.append(cfg.plant_height - xs[held, 2])
        if plant[f] != FLAT:
            other = 2 if plant[f] == HEEL else 0
            rows.append((js[other, 2] - js[held[0], 2])[None])
            lo_c.append(np.array([ROLL_LIFT - (xs[other, 2] - xs[held[0], 2])]))
            hi_c.append(np.array([INF]))
        for i in held:
            anchor = solver.anchor[f, i]
            if np.isnan(anchor[0]):
                continue
            jp = js[i, :2]
            rows.append(jp)
            lo_c.append(anchor - cfg.plant_tolerance - xs[i, :2])
            hi_c.append(anchor + cfg.plant_tolerance - xs[i, :2])
            H += cfg.plant_weight * jp.T @ jp
            g += cfg.plant_weight * jp.T @ (xs[i, :2] - anchor)
    dist, grad = tasks.collision_distance(fr, kin.capsules.pairs)
    close = dist < cfg.activation_distance
    rows.append(grad[close])
    lo_c.append(keep_out(dist[close], cfg.collision_margin))
    hi_c.append(np.full(close.sum(), INF))
    return H, g, lb, ub, np.concatenate(rows), np.concatenate(lo_c), np.concatenate(hi_c)


@pytest.mark.parametrize("seed", range(6))
def test_assembled_qp_matches_the_numpy_formulation(kin, seed):
    rng = np.random.default_rng(100 + seed)
    solver = FrameSolver(kin, RetargetConfig())
    # Low root heights put capsule ends near or under the floor; random joints bring capsule pairs close.
    q = random_q(kin, rng, height=rng.uniform(0.2, 0.8))
    q_prev = pin.integrate(kin.model, q, rng.normal(scale=0.02, size=kin.nv))
    fr = Frame(kin).update(q)
    target_pos = fr.points(kin.kp_slot, kin.kp_local) + rng.normal(scale=0.05, size=(len(kin.kp_slot), 3))
    rot = fr.rot[solver.rot_slot] @ solver.rot_local
    target_rot = np.stack([r @ pin.exp3(rng.normal(scale=0.3, size=3)) for r in rot])
    plant = np.array([[FLAT, HEEL], [TOE, FLAT], [FREE, TOE], [HEEL, FREE], [FLAT, FLAT], [FREE, FREE]][seed])
    for f in range(2):  # anchors a few mm from the current sole points; some points not held yet
        xs = fr.points(np.full(3, kin.sole_slot[f]), kin.sole_local[f])
        solver.anchor[f] = xs[:, :2] + rng.normal(scale=0.002, size=(3, 2))
        solver.anchor[f, rng.integers(3)] = np.nan
    shrink = 0.5
    got = []

    def record(*qp):
        got.append([np.array(a) for a in qp])
        return np.zeros(kin.nv), 1

    solver.solve_qp = record
    solver._step(q, q_prev, target_pos, target_rot, plant, True, shrink)
    ref = reference_qp(solver, q, q_prev, target_pos, target_rot, plant, shrink)
    assert got[0][4].shape == ref[4].shape
    assert ref[4].shape[0] > 0
    for a, b in zip(got[0], ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_penetration_check_matches_the_numpy_distances(kin):
    solver = FrameSolver(kin, RetargetConfig())
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(60):
        q = random_q(kin, rng, height=rng.uniform(0.3, 1.0))
        fr = Frame(kin).update(q)
        clear, _, _ = tasks.floor_clearance(fr)
        dist, _, _ = tasks.pair_distances(fr, kin.capsules.pairs)
        expect = bool((clear < 0).any() or (dist < 0).any())
        assert solver._penetrates(q) == expect
        hits += expect
    assert 0 < hits < 60
