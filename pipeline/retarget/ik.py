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

import numpy as np

from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.kinematics import Frame, RobotKinematics
from pipeline.retarget.qp import INF, SOLVE
from pipeline.retarget.tasks import (
    collision_distance,
    floor_clearance,
    keypoints,
    orientation_error,
    sole_points,
)

FREE, FLAT, HEEL, TOE = 0, 1, 2, 3
# Sole points (indices into RobotKinematics.sole_local: heel, centre, toe) held by each plant mode.
PLANT_POINTS = {FLAT: np.array([0, 2]), HEEL: np.array([0]), TOE: np.array([2])}
ROLL_OTHER = {HEEL: np.array([2]), TOE: np.array([0])}


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
    """Holds the preallocated state of the per-frame QP for one robot and config."""

    def __init__(self, kin: RobotKinematics, cfg: RetargetConfig) -> None:
        self.kin = kin
        self.cfg = cfg
        self.frame = Frame(kin)
        self.solve_qp = SOLVE[cfg.solver]
        self.dt = 1.0 / cfg.fps
        nv = kin.nv
        self.sqrt_wp = np.sqrt(cfg.position_weight * kin.kp_pos_weight)[:, None, None]
        self.rot_idx = np.flatnonzero(kin.kp_rot_weight * cfg.orientation_weight > 0)
        self.sqrt_wr = np.sqrt(cfg.orientation_weight * kin.kp_rot_weight[self.rot_idx])[:, None, None]
        self.reg = np.full(nv, cfg.damping)
        self.reg[6:] += cfg.previous_weight + cfg.default_weight
        self.reg[:6] += cfg.previous_weight
        self.vmax = kin.velocity_limit * cfg.velocity_scale * self.dt
        caps = kin.capsules
        half = 0.5 * np.linalg.norm(caps.b_local - caps.a_local, axis=1)
        self.bound_r = half + caps.radius
        self.pairs = caps.pairs
        self.pair_reach = self.bound_r[self.pairs[:, 0]] + self.bound_r[self.pairs[:, 1]]
        # Anchored xy of each foot's sole points (foot, heel/centre/toe, xy); NaN where not held.
        self.anchor = np.full((2, 3, 2), np.nan)
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
    ) -> np.ndarray:
        import pinocchio as pin

        kin, cfg, fr = self.kin, self.cfg, self.frame
        fr.update(q)
        nv = kin.nv
        x, jx = keypoints(fr)
        rows = [(self.sqrt_wp * jx).reshape(-1, nv)]
        res = [(self.sqrt_wp[:, :, 0] * (x - target_pos)).reshape(-1)]
        if len(self.rot_idx):
            er, jr = orientation_error(fr, self.rot_idx, target_rot)
            rows.append((self.sqrt_wr * jr).reshape(-1, nv))
            res.append((self.sqrt_wr[:, :, 0] * er).reshape(-1))
        A = np.concatenate(rows)
        b = np.concatenate(res)
        H = A.T @ A
        H[np.diag_indices(nv)] += self.reg
        g = A.T @ b
        dprev = pin.difference(kin.model, q_prev, q)
        g += cfg.previous_weight * dprev
        g[6:] += cfg.default_weight * (q[7:] - kin.q_default[7:])

        # Box: joint limits, and velocity limits relative to the previous frame.
        lb = np.full(nv, -INF)
        ub = np.full(nv, INF)
        qj = q[7:]
        lo = kin.lower - qj
        hi = kin.upper - qj
        if limit_velocity:
            lo = np.maximum(lo, -self.vmax - dprev[6:])
            hi = np.minimum(hi, self.vmax - dprev[6:])
        lb[6:] = np.minimum(lo, 0.0)
        ub[6:] = np.maximum(hi, 0.0)

        crow, clo, chi = [], [], []
        act = cfg.activation_distance
        # Floor: every capsule end sphere above z = 0.
        clear, jz, _ = floor_clearance(fr)
        near = clear < act
        if near.any():
            crow.append(jz[near])
            clo.append(cfg.floor_margin - clear[near])
            chi.append(np.full(int(near.sum()), INF))
        # Planted feet: the planted sole points (both ends when flat, heel or toe when rolling) held
        # horizontally at their anchors and kept on the floor.
        plant_rows = 0
        for f in range(2):
            mode = int(plant[f])
            if mode == FREE:
                continue
            xs, js = sole_points(fr, f, PLANT_POINTS[mode])
            crow.append(js[:, 2])
            clo.append(np.full(len(xs), -INF))
            chi.append(cfg.plant_height - xs[:, 2])
            plant_rows += len(xs)
            if mode != FLAT:
                # A rolling foot really rolls: the held end stays lower than the other by plant_roll.
                xe, je = sole_points(fr, f, ROLL_OTHER[mode])
                crow.append(je[:, 2] - js[:, 2])
                clo.append(cfg.plant_roll - (xe[:, 2] - xs[:, 2]))
                chi.append(np.full(1, INF))
                plant_rows += 1
            anchor = self.anchor[f, PLANT_POINTS[mode]]
            held = ~np.isnan(anchor[:, 0])
            if held.any():
                crow.append(js[held, :2].reshape(-1, nv))
                clo.append((anchor[held] - cfg.plant_tolerance - xs[held, :2]).reshape(-1))
                chi.append((anchor[held] + cfg.plant_tolerance - xs[held, :2]).reshape(-1))
                plant_rows += 2 * int(held.sum())
        # Self-collision: bounding-sphere broad phase, then capsule distances for the near pairs.
        caps = kin.capsules
        a = fr.points(caps.slot, caps.a_local)
        bb = fr.points(caps.slot, caps.b_local)
        mid = 0.5 * (a + bb)
        p = self.pairs
        gap = np.linalg.norm(mid[p[:, 0]] - mid[p[:, 1]], axis=1) - self.pair_reach
        cand = p[gap < act]
        if len(cand):
            dist, grad = collision_distance(fr, cand, (a, bb))
            close = dist < act
            if close.any():
                crow.append(grad[close])
                clo.append(cfg.collision_margin - dist[close])
                chi.append(np.full(int(close.sum()), INF))
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
            # Drop the plant rows (the first rows after the floor rows are cheap to find: rebuild without them).
            keep = np.ones(C.shape[0], dtype=bool)
            start = int(near.sum())
            keep[start : start + plant_rows] = False
            dq, _ = self.solve_qp(H, g, lb, ub, C[keep], cl[keep], cu[keep])
            if dq is None:
                dq, _ = self.solve_qp(H, g, lb, ub, np.zeros((0, nv)), np.zeros(0), np.zeros(0))
                self.stats["qp_fallbacks"] += 1
            if dq is None:
                return q
        self.stats["iterations"] += 1
        return pin.integrate(kin.model, q, dq)

    def solve(
        self,
        q_prev: np.ndarray,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        plant: np.ndarray,
        *,
        first: bool = False,
    ) -> np.ndarray:
        """Configuration (nq,) for one frame.

        target_pos: (K, 3); target_rot: (O, 3, 3); plant: (2,) plant mode of the left and right foot
        (FREE, FLAT, HEEL, TOE).
        """
        q = q_prev
        iters = self.cfg.first_iterations if first else self.cfg.iterations
        for _ in range(iters):
            q = self._step(q, q_prev if not first else q, target_pos, target_rot, plant, not first)
        q[7:] = np.clip(q[7:], self.kin.lower, self.kin.upper)
        # Anchors: a sole point that starts being held is anchored where it landed (solved with its height
        # constraint only); points already held keep their anchors across heel/flat/toe changes.
        for f in range(2):
            mode = int(plant[f])
            held = np.zeros(3, dtype=bool)
            if mode != FREE:
                held[PLANT_POINTS[mode]] = True
            self.anchor[f, ~held] = np.nan
            new = held & np.isnan(self.anchor[f, :, 0])
            if new.any():
                idx = np.flatnonzero(new)
                xs = self.frame.update(q).points(
                    np.full(len(idx), self.kin.sole_slot[f]), self.kin.sole_local[f, idx]
                )
                self.anchor[f, idx] = xs[:, :2]
        return q
