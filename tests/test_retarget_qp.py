"""The QP back ends against a slow reference (scipy SLSQP on the same QP, and a dense KKT solve)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from pipeline.retarget.qp import INF, solve_daqp, solve_proxsuite


def random_qp(rng: np.random.Generator, n: int = 14, m: int = 10):
    """A strictly convex QP like the IK's: least squares + damping, a box containing 0, rows with 0 feasible."""
    A = rng.normal(size=(3 * n // 2, n)) / np.sqrt(n)
    H = A.T @ A + 1e-2 * np.eye(n)
    g = rng.normal(size=n)
    lb = -rng.uniform(0.05, 0.5, n)
    ub = rng.uniform(0.05, 0.5, n)
    lb[:6], ub[:6] = -INF, INF
    C = rng.normal(size=(m, n))
    cl = -rng.uniform(0.0, 0.3, m)
    cu = np.where(rng.random(m) < 0.5, INF, rng.uniform(0.0, 0.3, m))
    return H, g, lb, ub, C, cl, cu


def reference(H, g, lb, ub, C, cl, cu) -> np.ndarray:
    n = len(g)
    cons = [{"type": "ineq", "fun": lambda x: C @ x - cl, "jac": lambda x: C}]
    fin = cu < INF / 2
    if fin.any():
        cons.append({"type": "ineq", "fun": lambda x: cu[fin] - C[fin] @ x, "jac": lambda x: -C[fin]})
    bounds = [
        (None if lo <= -INF / 2 else lo, None if hi >= INF / 2 else hi) for lo, hi in zip(lb, ub, strict=True)
    ]
    res = minimize(
        lambda x: 0.5 * x @ H @ x + g @ x,
        np.zeros(n),
        jac=lambda x: H @ x + g,
        bounds=bounds,
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    # SLSQP may stop on "positive directional derivative" at its precision floor; its point is still the
    # optimum to ~1e-6, which is what the comparison below needs.
    assert res.success or res.status == 8, res.message
    return res.x


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("solver", [solve_daqp, solve_proxsuite])
def test_qp_matches_slsqp(seed, solver):
    rng = np.random.default_rng(seed)
    prob = random_qp(rng)
    x, flag = solver(*prob)
    assert x is not None, flag
    ref = reference(*prob)
    H, g = prob[0], prob[1]
    obj = 0.5 * x @ H @ x + g @ x
    obj_ref = 0.5 * ref @ H @ ref + g @ ref
    assert obj <= obj_ref + 1e-6 * max(1.0, abs(obj_ref))
    np.testing.assert_allclose(x, ref, atol=2e-4)
    _, _, lb, ub, C, cl, cu = prob
    assert np.all(x >= lb - 1e-7) and np.all(x <= ub + 1e-7)
    v = C @ x
    assert np.all(v >= cl - 1e-7) and np.all(v <= cu + 1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_equality_only_matches_kkt(seed):
    """Rows with cl == cu: the dense KKT system gives the exact answer."""
    rng = np.random.default_rng(100 + seed)
    n, m = 35, 8
    A = rng.normal(size=(50, n))
    H = A.T @ A + 1e-3 * np.eye(n)
    g = rng.normal(size=n)
    C = rng.normal(size=(m, n))
    d = rng.normal(size=m) * 0.1
    kkt = np.block([[H, C.T], [C, np.zeros((m, m))]])
    exact = np.linalg.solve(kkt, np.concatenate([-g, d]))[:n]
    box = np.full(n, INF)
    x, _ = solve_daqp(H, g, -box, box, C, d, d)
    assert x is not None
    np.testing.assert_allclose(x, exact, atol=1e-8)


def test_daqp_reports_infeasible_and_soft_rows_recover():
    n = 4
    H = np.eye(n)
    g = np.zeros(n)
    box = np.full(n, INF)
    C = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    cl = np.array([1.0, -INF])
    cu = np.array([INF, -1.0])  # x0 >= 1 and x0 <= -1
    x, flag = solve_daqp(H, g, -box, box, C, cl, cu)
    assert x is None and flag < 0
    x, flag = solve_daqp(H, g, -box, box, C, cl, cu, soft=np.array([False, True]))
    assert x is not None
    assert x[0] >= 1.0 - 1e-9
