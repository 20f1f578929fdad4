"""Dense QP back ends for the IK:  min 0.5 x'Hx + g'x  s.t.  lb <= x <= ub,  cl <= C x <= cu.

daqp (dual active set, called through its direct API) is the default. Measured here (2 shared cores): a
35-variable, ~50-row IK QP takes ~35 us per daqp call including the Python call, against ~290 us for proxsuite's
dense solver set up per problem; over a whole clip `benchmarks/retarget.py --compare proxsuite` gave 284
frames per CPU-second with daqp against 119 with proxsuite (CMU 131_01, one run at load ~12 on 2 cores). Active-set solvers also return exact
vertices, so active constraints (a planted foot, a joint at its limit) hold to machine precision, and daqp
takes soft rows, which the IK uses for frames whose planted feet conflict with the rest.
"""

from __future__ import annotations

import numpy as np

INF = 1e30
OPTIMAL = 1
SOFT = 8  # daqp constraint sense: may be violated if the problem is otherwise infeasible


def solve_daqp(
    H: np.ndarray,
    g: np.ndarray,
    lb: np.ndarray,
    ub: np.ndarray,
    C: np.ndarray,
    cl: np.ndarray,
    cu: np.ndarray,
    soft: np.ndarray | None = None,
) -> tuple[np.ndarray | None, int]:
    """Returns (x, exitflag); x is None unless daqp reports an optimum (exitflag 1, or 2 = soft optimum).

    ``soft``: (m,) bool, rows of C that may be violated (at a cost) when the problem is otherwise infeasible.
    """
    import daqp

    bu = np.concatenate([ub, cu])
    bl = np.concatenate([lb, cl])
    sense = np.zeros(bu.shape[0], dtype=np.int32)
    if soft is not None:
        sense[len(ub) :][soft] = SOFT
    x, _, flag, _ = daqp.solve(H, g, np.ascontiguousarray(C), bu, bl, sense)
    return (np.asarray(x) if flag in (1, 2) else None), int(flag)


def solve_proxsuite(
    H: np.ndarray,
    g: np.ndarray,
    lb: np.ndarray,
    ub: np.ndarray,
    C: np.ndarray,
    cl: np.ndarray,
    cu: np.ndarray,
    soft: np.ndarray | None = None,
) -> tuple[np.ndarray | None, int]:
    """As :func:`solve_daqp`; proxsuite has no soft rows, so with ``soft`` the soft rows are dropped."""
    import proxsuite

    if soft is not None:
        C, cl, cu = C[~soft], cl[~soft], cu[~soft]

    n, m = H.shape[0], C.shape[0]
    qp = proxsuite.proxqp.dense.QP(n, 0, m, True)
    qp.settings.eps_abs = 1e-9
    qp.settings.verbose = False
    qp.init(H, g, None, None, C if m else None, cl if m else None, cu if m else None, lb, ub)
    qp.solve()
    ok = qp.results.info.status == proxsuite.proxqp.QPSolverOutput.PROXQP_SOLVED
    return (np.array(qp.results.x) if ok else None), (OPTIMAL if ok else -1)


SOLVE = {"daqp": solve_daqp, "proxsuite": solve_proxsuite}
