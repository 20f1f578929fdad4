"""Differential-IK QP, one frame at a time (warm-started from the previous frame).

Per iteration, at configuration q (pinocchio, free flyer), the step dq (nv,) solves

    min  sum_k wp_k |x_k + J_k dq - x*_k|^2 + sum_o wr_o |log(R*_o^T R_o) + J_o dq|^2
         + w_prev |q + dq - q_prev|^2 + w_def |q + dq - q_def|^2_joints + damping |dq|^2
    s.t. joint limits and joint velocity limits (box on the hinge part of dq),
         capsule ends above the floor, planted soles fixed horizontally and on the floor,
         capsule pairs of different bodies at least ``collision_margin`` apart,

with every constraint linearised at q; then q <- integrate(q, dq).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.kinematics import Frame, RobotKinematics
from pipeline.retarget.qp import INF, SOLVE

FREE, FLAT, HEEL, TOE = 0, 1, 2, 3  # the same codes as pipeline.retarget.kernels
# Sole points (indices into RobotKinematics.sole_local: heel, centre, toe) held by each plant mode.
PLANT_POINTS = {FLAT: np.array([0, 2]), HEEL: np.array([0]), TOE: np.array([2])}
HELD = {
    FREE: (False, False, False),
    FLAT: (True, False, True),
    HEEL: (True, False, False),
    TOE: (False, False, True),
}
ROLL_LIFT = 0.004  # m: how much higher the free end of a rolling foot is held than the planted end


def plant_modes(
    contacts: np.ndarray, ankle_rot_w: np.ndarray, heel_to_toe: np.ndarray, roll: float
) -> np.ndarray:
    """(T, 2) plant mode per foot: FREE without contact; else TOE / HEEL when the target foot pitches so that
    the toe / heel is more than ``roll`` metres lower than the other end, FLAT otherwise.

    contacts: (T, 2) bool; ankle_rot_w: (T, 2, 3, 3) target foot rotations; heel_to_toe: (3,) in the foot frame.
    """
    dz = (ankle_rot_w @ heel_to_toe)[..., 2]  # toe height minus heel height
    mode = np.where(dz < -roll, TOE, np.where(dz > roll, HEEL, FLAT))
    return np.where(contacts, mode, FREE)


class FrameSolver:
    """Holds the preallocated state of the per-frame QP for one robot and config.

    One iteration is one compiled call (:func:`pipeline.retarget.kernels.assemble`) that writes the QP into
    preallocated arrays, then the QP solve; Jacobians are formed only for the rows that enter the QP.
    """

    def __init__(self, kin: RobotKinematics, cfg: RetargetConfig) -> None:
        # Imported here: numba loads only in processes that retarget (not in those that read quality reports).
        from pipeline.retarget.kernels import assemble, penetrates

        self._assemble = assemble
        self._penetrates_kernel = penetrates
        self.kin = kin
        self.cfg = cfg
        self.frame = Frame(kin)
        # solve_qp(H, g, lb, ub, C, cl, cu) -> (dq | None, flag): subclasses may wrap it to add rows. The
        # fallbacks for infeasible frames call the plain back end (soft rows need its ``soft`` argument).
        self.solve_qp: Callable[..., tuple[np.ndarray | None, int]] = SOLVE[cfg.solver]
        self.fallback_qp = SOLVE[cfg.solver]
        self.dt = 1.0 / cfg.fps
        nv = kin.nv
        k = len(kin.kp_slot)
        self.rot_idx = np.flatnonzero(kin.kp_rot_weight * cfg.orientation_weight > 0)
        self.sqrt_wr = np.sqrt(cfg.orientation_weight * kin.kp_rot_weight[self.rot_idx])
        self.rot_slot = np.ascontiguousarray(kin.kp_slot[self.rot_idx])
        self.rot_local = np.ascontiguousarray(kin.kp_rot_local[self.rot_idx])
        self.sqrt_wp = np.sqrt(cfg.position_weight * kin.kp_pos_weight)
        self.reg = np.full(nv, cfg.damping)
        self.reg[6:] += cfg.previous_weight + cfg.default_weight
        self.reg[:6] += cfg.previous_weight
        self.vmax = kin.velocity_limit * cfg.velocity_scale * self.dt
        # Per joint slot, the tangent columns that move it (ascending), for the sparse products of the QP.
        self.n_support = (kin.mask != 0).sum(axis=1).astype(np.int64)
        self.support = np.zeros(kin.mask.shape, dtype=np.int64)
        for s, row in enumerate(kin.mask):
            cols = np.flatnonzero(row)
            self.support[s, : len(cols)] = cols
        caps = kin.capsules
        g = len(caps.slot)
        # Capsule end points: a (G) then b (G).
        self.end_radius = np.concatenate([caps.radius, caps.radius])
        self.end_slot = np.concatenate([caps.slot, caps.slot])
        self.end_local = np.concatenate([caps.a_local, caps.b_local])
        half = 0.5 * np.linalg.norm(caps.b_local - caps.a_local, axis=1)
        self.pairs = caps.pairs
        self.pair_reach = (half + caps.radius)[self.pairs[:, 0]] + (half + caps.radius)[self.pairs[:, 1]]
        self.pair_rad = caps.radius[self.pairs[:, 0]] + caps.radius[self.pairs[:, 1]]
        self.pair_i = np.ascontiguousarray(self.pairs[:, 0])
        self.pair_j = np.ascontiguousarray(self.pairs[:, 1])
        # Broad phase on squared distances between capsule mid points (a + b = 2 mid): a pair is a candidate
        # when |mid_i - mid_j| < reach + threshold, i.e. |(a+b)_i - (a+b)_j|^2 < (2 (reach + threshold))^2.
        self.pair_act_sq = (2.0 * (self.pair_reach + cfg.activation_distance)) ** 2
        self.pair_touch_sq = (2.0 * self.pair_reach) ** 2
        # The QP, written in place by kernels.assemble each iteration: cost rows A (scratch), H, g, the box
        # lb, ub, and up to one row per capsule end, plant row and capsule pair in C, cl, cu.
        n_rows = 2 * g + 14 + len(self.pairs)
        self.A = np.zeros((3 * (k + len(self.rot_idx)), nv))
        self.H = np.zeros((nv, nv))
        self.g = np.zeros(nv)
        self.lb = np.full(nv, -INF)
        self.ub = np.full(nv, INF)
        self.C = np.zeros((n_rows, nv))
        self.cl = np.zeros(n_rows)
        self.cu = np.zeros(n_rows)
        # Anchored xy of each foot's sole points (foot, heel/centre/toe, xy); NaN where not held.
        self.anchor = np.full((2, 3, 2), np.nan)
        self.debug: list | None = None
        self.last_step = np.inf
        self.stats = {"qp_failures": 0, "qp_fallbacks": 0, "iterations": 0}

    # -- one linearisation ---------------------------------------------------------------------------------
    def _step(
        self,
        q: np.ndarray,
        q_prev: np.ndarray,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        plant: np.ndarray,
        limit_velocity: bool,
        shrink: float = 1.0,
    ) -> np.ndarray:
        import pinocchio as pin

        kin, cfg, fr = self.kin, self.cfg, self.frame
        fr.update(q)
        nv = kin.nv
        dprev = pin.difference(kin.model, q_prev, q)
        H, g, lb, ub, C, cl, cu = self.H, self.g, self.lb, self.ub, self.C, self.cl, self.cu
        # The trust region: the linearisation (and the activation distance of the floor and collision rows)
        # holds for steps of this size.
        m, n_floor, plant_rows = self._assemble(
            fr.J, fr.rot, fr.pos, kin.mask, self.support, self.n_support,
            kin.kp_slot, kin.kp_local, self.sqrt_wp, np.ascontiguousarray(target_pos, dtype=float),
            self.rot_slot, self.rot_local, self.sqrt_wr, np.ascontiguousarray(target_rot, dtype=float),
            kin.sole_slot, kin.sole_local, np.ascontiguousarray(plant, dtype=np.int64), self.anchor,
            self.end_slot, self.end_local, self.end_radius,
            self.pair_i, self.pair_j, self.pair_act_sq, self.pair_rad,
            q, kin.q_default, dprev, kin.lower, kin.upper, self.vmax, limit_velocity,
            self.reg, cfg.previous_weight, cfg.default_weight, cfg.max_step * shrink, cfg.max_root_step * shrink,
            cfg.activation_distance, cfg.floor_margin, cfg.collision_margin, cfg.plant_height,
            cfg.plant_tolerance, cfg.plant_weight, ROLL_LIFT,
            self.A, H, g, lb, ub, C, cl, cu,
        )  # fmt: skip
        C, cl, cu = C[:m], cl[:m], cu[:m]
        dq, _ = self.solve_qp(H, g, lb, ub, C, cl, cu)
        if dq is None:
            self.stats["qp_failures"] += 1
            if self.debug is not None:
                self.debug.append(
                    (n_floor, plant_rows, H.copy(), g.copy(), lb.copy(), ub.copy(), C.copy(), cl.copy(),
                     cu.copy(), plant.copy())
                )  # fmt: skip
            # Infeasible (a foot landing or rolling conflicts with the rest): the plant rows become soft, then
            # are dropped, then everything but the box.
            soft = np.zeros(m, dtype=bool)
            soft[n_floor : n_floor + plant_rows] = True
            dq, _ = self.fallback_qp(H, g, lb, ub, C, cl, cu, soft=soft)
            if dq is None:
                dq, _ = self.fallback_qp(H, g, lb, ub, C[~soft], cl[~soft], cu[~soft])
            if dq is None:
                dq, _ = self.fallback_qp(H, g, lb, ub, np.zeros((0, nv)), np.zeros(0), np.zeros(0))
                self.stats["qp_fallbacks"] += 1
            if dq is None:
                return q
        self.stats["iterations"] += 1
        self.last_step = float(np.abs(dq).max())
        return pin.integrate(kin.model, q, dq)

    def _penetrates(self, q: np.ndarray) -> bool:
        """Whether any collision capsule at ``q`` is below the floor or inside a capsule of another body."""
        fr = self.frame.update(q)
        hit = self._penetrates_kernel(
            fr.rot, fr.pos, self.end_slot, self.end_local, self.end_radius,
            self.pair_i, self.pair_j, self.pair_touch_sq, self.pair_rad,
        )  # fmt: skip
        return bool(hit)

    def solve(
        self,
        q_prev: np.ndarray,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        plant: np.ndarray,
        *,
        q_init: np.ndarray | None = None,
        first: bool = False,
    ) -> np.ndarray:
        """Configuration (nq,) for one frame.

        q_prev: the previous frame's solution (velocity limits and smoothing are relative to it);
        q_init: where to start iterating (default q_prev; e.g. extrapolated from the last two frames);
        target_pos: (K, 3); target_rot: (O, 3, 3); plant: (2,) plant mode of the left and right foot
        (FREE, FLAT, HEEL, TOE).
        """
        # Anchors: a sole point that starts being held is anchored where it was at the previous frame (it lands
        # straight down; a foot rolling onto its other end pivots about the end already held); points already
        # held keep their anchors across heel/flat/toe changes; points no longer held are released.
        for f in range(2):
            held = HELD[int(plant[f])]
            anchor = self.anchor[f]
            new = []
            for i in range(3):
                if not held[i]:
                    anchor[i] = np.nan
                elif math.isnan(anchor[i, 0]):
                    new.append(i)
            if new and not first:
                idx = np.array(new)
                slot = np.full(len(idx), self.kin.sole_slot[f])
                xs = self.frame.update(q_prev).points(slot, self.kin.sole_local[f, idx])
                self.anchor[f, idx] = xs[:, :2]
        q = q_prev if q_init is None else q_init
        iters = self.cfg.first_iterations if first else self.cfg.iterations
        for it in range(iters):
            # Later iterations are corrections: a shrinking trust region keeps their linearisation error (what
            # the margins must absorb) small.
            shrink = 1.0 if first or it == 0 else 0.5
            q = self._step(q, q if first else q_prev, target_pos, target_rot, plant, not first, shrink)
            if it > 0 and self.last_step < self.cfg.tolerance:
                break  # converged: the remaining iterations would not move
        # Verify: a capsule through the floor or another body (the linearisation missed it) gets up to two
        # more correction steps.
        for _ in range(2):
            if not self._penetrates(q):
                break
            q = self._step(q, q if first else q_prev, target_pos, target_rot, plant, not first, 0.5)
        q[7:] = np.minimum(np.maximum(q[7:], self.kin.lower), self.kin.upper)  # np.clip, without its overhead
        if first:  # the first frame anchors its held points where it was solved
            for f in range(2):
                if int(plant[f]) != FREE:
                    idx = PLANT_POINTS[int(plant[f])]
                    slot = np.full(len(idx), self.kin.sole_slot[f])
                    self.anchor[f, idx] = self.frame.update(q).points(slot, self.kin.sole_local[f, idx])[
                        :, :2
                    ]
        return q
