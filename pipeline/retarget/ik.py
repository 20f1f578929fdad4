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

from collections.abc import Callable

import numpy as np

from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.kinematics import Frame, RobotKinematics
from pipeline.retarget.qp import INF, SOLVE
from pipeline.retarget.tasks import orientation_error, segment_closest_points

FREE, FLAT, HEEL, TOE = 0, 1, 2, 3
# Sole points (indices into RobotKinematics.sole_local: heel, centre, toe) held by each plant mode.
PLANT_POINTS = {FLAT: np.array([0, 2]), HEEL: np.array([0]), TOE: np.array([2])}
ROLL_OTHER = {HEEL: np.array([2]), TOE: np.array([0])}
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


def _keep_out(dist: np.ndarray, margin: float) -> np.ndarray:
    """Lower bounds on the linearised change of distances ``dist`` (P,).

    Inside the margin but clear, a distance may only grow (so the previous pose stays feasible); in
    penetration, it must reach the margin; outside it, it may shrink down to the margin.
    """
    target = np.where(dist < 0.0, margin, np.minimum(dist, margin))
    return target - dist


class FrameSolver:
    """Holds the preallocated state of the per-frame QP for one robot and config.

    For speed, one iteration evaluates every point it needs in one batch: keypoints, the six sole points and
    both ends of every collision capsule; Jacobians are formed only for the rows that enter the QP.
    """

    def __init__(self, kin: RobotKinematics, cfg: RetargetConfig) -> None:
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
        self.sqrt_wp = np.sqrt(cfg.position_weight * kin.kp_pos_weight)[:, None]
        self.rot_idx = np.flatnonzero(kin.kp_rot_weight * cfg.orientation_weight > 0)
        self.sqrt_wr = np.sqrt(cfg.orientation_weight * kin.kp_rot_weight[self.rot_idx])[:, None, None]
        self.reg = np.full(nv, cfg.damping)
        self.reg[6:] += cfg.previous_weight + cfg.default_weight
        self.reg[:6] += cfg.previous_weight
        self.diag = np.diag_indices(nv)
        self.vmax = kin.velocity_limit * cfg.velocity_scale * self.dt
        caps = kin.capsules
        g = len(caps.slot)
        # All points of one iteration: keypoints (K), sole points (2 x 3), capsule ends a (G), b (G).
        self.n_kp = k
        self.slots = np.concatenate([kin.kp_slot, np.repeat(kin.sole_slot, 3), caps.slot, caps.slot])
        self.locals = np.concatenate(
            [kin.kp_local, kin.sole_local.reshape(-1, 3), caps.a_local, caps.b_local]
        )
        self.n_jac = k + 6  # points whose full Jacobians are always needed
        self.ends_start = k + 6
        self.jac_mask = kin.mask[self.slots[: self.n_jac]][:, None, :]
        self.n_caps = g
        self.end_radius = np.concatenate([caps.radius, caps.radius])
        self.end_slot = np.concatenate([caps.slot, caps.slot])
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
        self.lb = np.full(nv, -INF)
        self.ub = np.full(nv, INF)
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
        k = self.n_kp
        pts = fr.points(self.slots, self.locals)
        jac = fr.point_jacobians(self.slots[: self.n_jac], pts[: self.n_jac], self.jac_mask)
        wp = self.sqrt_wp
        rows = [(wp[:, :, None] * jac[:k]).reshape(-1, nv)]
        res = [(wp * (pts[:k] - target_pos)).reshape(-1)]
        if len(self.rot_idx):
            er, jr = orientation_error(fr, self.rot_idx, target_rot)
            rows.append((self.sqrt_wr * jr).reshape(-1, nv))
            res.append((self.sqrt_wr[:, :, 0] * er).reshape(-1))
        A = np.concatenate(rows)
        H = A.T @ A
        H[self.diag] += self.reg
        g = A.T @ np.concatenate(res)
        dprev = pin.difference(kin.model, q_prev, q)
        g += cfg.previous_weight * dprev
        g[6:] += cfg.default_weight * (q[7:] - kin.q_default[7:])

        # Box: joint limits, and velocity limits relative to the previous frame.
        lb, ub = self.lb, self.ub
        lo = kin.lower - q[7:]
        hi = kin.upper - q[7:]
        if limit_velocity:
            lo = np.maximum(lo, -self.vmax - dprev[6:])
            hi = np.minimum(hi, self.vmax - dprev[6:])
        # Trust region: the linearisation (and the activation distance of the floor and collision rows) holds
        # for steps of this size.
        step = cfg.max_step * shrink
        lb[6:] = np.minimum(np.maximum(lo, -step), 0.0)
        ub[6:] = np.maximum(np.minimum(hi, step), 0.0)
        lb[:6] = -cfg.max_root_step * shrink
        ub[:6] = cfg.max_root_step * shrink

        crow, clo, chi = [], [], []
        act = cfg.activation_distance
        # Floor: every capsule end sphere above z = 0.
        ends = pts[self.ends_start :]
        clear = ends[:, 2] - self.end_radius
        near = np.flatnonzero(clear < act)
        if len(near):
            crow.append(fr.point_z_jacobians(self.end_slot[near], ends[near]))
            clo.append(_keep_out(clear[near], cfg.floor_margin))
            chi.append(np.full(len(near), INF))
        n_floor = len(near)
        # Planted feet: the planted sole points (both ends when flat, heel or toe when rolling) held
        # horizontally at their anchors and kept on the floor.
        plant_rows = 0
        for f in range(2):
            mode = int(plant[f])
            if mode == FREE:
                continue
            idx = PLANT_POINTS[mode]
            xs = pts[k + 3 * f + idx]
            js = jac[k + 3 * f + idx]
            crow.append(js[:, 2])
            clo.append(np.full(len(idx), -INF))
            chi.append(cfg.plant_height - xs[:, 2])
            plant_rows += len(idx)
            if mode != FLAT:
                # A rolling foot really rolls: the held end stays lower than the other by ROLL_LIFT.
                other = k + 3 * f + ROLL_OTHER[mode]
                crow.append(jac[other, 2] - js[:, 2])
                clo.append(ROLL_LIFT - (pts[other, 2] - xs[:, 2]))
                chi.append(np.full(1, INF))
                plant_rows += 1
            anchor = self.anchor[f, idx]
            held = ~np.isnan(anchor[:, 0])
            if held.any():
                crow.append(js[held, :2].reshape(-1, nv))
                # Strict: a held point drifted by the last step's linearisation error is pulled back.
                clo.append((anchor[held] - cfg.plant_tolerance - xs[held, :2]).reshape(-1))
                chi.append((anchor[held] + cfg.plant_tolerance - xs[held, :2]).reshape(-1))
                # ... and pulled to the anchor itself by a stiff cost, so it does not wander inside the box.
                jp = crow[-1]
                H += cfg.plant_weight * (jp.T @ jp)
                g += cfg.plant_weight * (jp.T @ (xs[held, :2] - anchor[held]).reshape(-1))
                plant_rows += 2 * int(held.sum())
        # Self-collision: bounding-sphere broad phase, capsule distances for the near pairs, Jacobians only for
        # the pairs closer than the activation distance.
        a = ends[: self.n_caps]
        b = ends[self.n_caps :]
        d = (a + b)[self.pair_i] - (a + b)[self.pair_j]
        cand = np.flatnonzero(np.einsum("pk,pk->p", d, d) < self.pair_act_sq)
        if len(cand):
            i, j = self.pair_i[cand], self.pair_j[cand]
            s, t = segment_closest_points(a[i], b[i], a[j], b[j])
            c1 = a[i] + s[:, None] * (b[i] - a[i])
            c2 = a[j] + t[:, None] * (b[j] - a[j])
            diff = c1 - c2
            norm = np.linalg.norm(diff, axis=1)
            dist = norm - self.pair_rad[cand]
            close = np.flatnonzero(dist < act)
            if len(close):
                n = diff[close] / np.maximum(norm[close], 1e-9)[:, None]
                cs = self.kin.capsules.slot
                m = len(close)
                both = fr.point_normal_jacobians(
                    np.concatenate([cs[i[close]], cs[j[close]]]),
                    np.concatenate([c1[close], c2[close]]),
                    np.concatenate([n, -n]),
                )
                crow.append(both[:m] + both[m:])
                clo.append(_keep_out(dist[close], cfg.collision_margin))
                chi.append(np.full(len(close), INF))
        if crow:
            C = np.concatenate(crow)
            cl = np.concatenate(clo)
            cu = np.concatenate(chi)
        else:
            C = np.zeros((0, nv))
            cl = cu = np.zeros(0)
        dq, _ = self.solve_qp(H, g, lb, ub, C, cl, cu)
        if dq is None:
            self.stats["qp_failures"] += 1
            if self.debug is not None:
                self.debug.append((n_floor, plant_rows, H, g, lb, ub, C, cl, cu, plant.copy()))
            # Infeasible (a foot landing or rolling conflicts with the rest): the plant rows become soft, then
            # are dropped, then everything but the box.
            soft = np.zeros(C.shape[0], dtype=bool)
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
        ends = fr.points(
            self.end_slot, np.concatenate([self.kin.capsules.a_local, self.kin.capsules.b_local])
        )
        if (ends[:, 2] - self.end_radius < 0.0).any():
            return True
        a, b = ends[: self.n_caps], ends[self.n_caps :]
        d = (a + b)[self.pair_i] - (a + b)[self.pair_j]
        cand = np.flatnonzero(np.einsum("pk,pk->p", d, d) < self.pair_touch_sq)
        if not len(cand):
            return False
        i, j = self.pair_i[cand], self.pair_j[cand]
        s, t = segment_closest_points(a[i], b[i], a[j], b[j])
        diff = a[i] + s[:, None] * (b[i] - a[i]) - a[j] - t[:, None] * (b[j] - a[j])
        return bool((np.linalg.norm(diff, axis=1) < self.pair_rad[cand]).any())

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
            mode = int(plant[f])
            held = np.zeros(3, dtype=bool)
            if mode != FREE:
                held[PLANT_POINTS[mode]] = True
            self.anchor[f, ~held] = np.nan
            new = held & np.isnan(self.anchor[f, :, 0])
            if new.any() and not first:
                idx = np.flatnonzero(new)
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
        q[7:] = np.clip(q[7:], self.kin.lower, self.kin.upper)
        if first:  # the first frame anchors its held points where it was solved
            for f in range(2):
                if int(plant[f]) != FREE:
                    idx = PLANT_POINTS[int(plant[f])]
                    slot = np.full(len(idx), self.kin.sole_slot[f])
                    self.anchor[f, idx] = self.frame.update(q).points(slot, self.kin.sole_local[f, idx])[
                        :, :2
                    ]
        return q
