"""Compiled (numba) kernels of the IK's per-iteration hot path; each mirrors a numpy/pinocchio reference.

- :func:`forward_kinematics`: joint placements and the world Jacobian ``data.J`` of a tree of free-flyer and
  revolute (x, y, z) joints, as pinocchio's ``computeJointJacobians`` (checked against it in the tests).
- :func:`log3` / :func:`jlog3`: pinocchio's ``log3`` and ``Jlog3``.
- :func:`segment_params`: :func:`pipeline.retarget.tasks.segment_closest_points` for one pair.
- :func:`assemble`: the QP of one SQP iteration (:meth:`pipeline.retarget.ik.FrameSolver._step`) written into
  preallocated arrays; :func:`penetrates`: the floor / self-penetration check of a configuration.

Loops run in a fixed order and nothing is parallel, so results are deterministic. Compiled code is cached
on disk (``cache=True``): the first run on a machine compiles for ~10-20 s, later processes load the cache.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

FREE_FLYER = -1  # joint axis code of the free flyer; 0, 1, 2 are revolute joints about x, y, z
INF = 1e30
FREE, FLAT, HEEL, TOE = 0, 1, 2, 3
PI = math.pi


@njit(cache=True)
def forward_kinematics(
    q, parent, axis, jp_rot, jp_pos, idx_q, idx_v, rot_all, pos_all, J
):  # pragma: no cover
    """World joint placements ``rot_all`` (nj, 3, 3), ``pos_all`` (nj, 3) and world Jacobian ``J`` (6, nv).

    ``J[:, v]`` = [linear velocity of the point at the world origin; angular velocity] for unit ``dq[v]``;
    the free flyer's tangent is (linear, angular) in its own frame, its quaternion is q[3:7] (x, y, z, w).
    Joint 0 is the world. ``jp_rot``, ``jp_pos``: joint placements in the parent joint's frame.
    """
    rot_all[0] = np.eye(3)
    pos_all[0] = 0.0
    J[:] = 0.0
    for i in range(1, parent.shape[0]):
        p = parent[i]
        pr = rot_all[p]
        pt = pos_all[p]
        r0 = np.empty((3, 3))
        t0 = np.empty(3)
        for a in range(3):
            t0[a] = pt[a]
            for b in range(3):
                t0[a] += pr[a, b] * jp_pos[i, b]
                s = 0.0
                for h in range(3):
                    s += pr[a, h] * jp_rot[i, h, b]
                r0[a, b] = s
        iq, iv = idx_q[i], idx_v[i]
        ax = axis[i]
        rq = np.empty((3, 3))
        if ax == FREE_FLYER:
            x, y, z, w = q[iq + 3], q[iq + 4], q[iq + 5], q[iq + 6]
            tx, ty, tz = 2.0 * x, 2.0 * y, 2.0 * z
            twx, twy, twz = tx * w, ty * w, tz * w
            txx, txy, txz = tx * x, ty * x, tz * x
            tyy, tyz, tzz = ty * y, tz * y, tz * z
            rq[0, 0] = 1.0 - (tyy + tzz)
            rq[0, 1] = txy - twz
            rq[0, 2] = txz + twy
            rq[1, 0] = txy + twz
            rq[1, 1] = 1.0 - (txx + tzz)
            rq[1, 2] = tyz - twx
            rq[2, 0] = txz - twy
            rq[2, 1] = tyz + twx
            rq[2, 2] = 1.0 - (txx + tyy)
            for a in range(3):
                s = t0[a]
                for b in range(3):
                    s += r0[a, b] * q[iq + b]
                pos_all[i, a] = s
        else:
            cq = math.cos(q[iq])
            sq = math.sin(q[iq])
            rq[:] = 0.0
            rq[ax, ax] = 1.0
            u = (ax + 1) % 3
            v = (ax + 2) % 3
            rq[u, u] = cq
            rq[u, v] = -sq
            rq[v, u] = sq
            rq[v, v] = cq
            pos_all[i] = t0
        for a in range(3):
            for b in range(3):
                s = 0.0
                for h in range(3):
                    s += r0[a, h] * rq[h, b]
                rot_all[i, a, b] = s
        r = rot_all[i]
        t = pos_all[i]
        if ax == FREE_FLYER:
            for k in range(3):
                for a in range(3):
                    J[a, iv + k] = r[a, k]
                w0, w1, w2 = r[0, k], r[1, k], r[2, k]
                J[0, iv + 3 + k] = t[1] * w2 - t[2] * w1
                J[1, iv + 3 + k] = t[2] * w0 - t[0] * w2
                J[2, iv + 3 + k] = t[0] * w1 - t[1] * w0
                J[3, iv + 3 + k] = w0
                J[4, iv + 3 + k] = w1
                J[5, iv + 3 + k] = w2
        else:
            w0, w1, w2 = r[0, ax], r[1, ax], r[2, ax]
            J[0, iv] = t[1] * w2 - t[2] * w1
            J[1, iv] = t[2] * w0 - t[0] * w2
            J[2, iv] = t[0] * w1 - t[1] * w0
            J[3, iv] = w0
            J[4, iv] = w1
            J[5, iv] = w2


@njit(cache=True)
def log3(R, out):  # pragma: no cover
    """Rotation vector (3,) of rotation matrix ``R`` into ``out``; returns its angle (pinocchio's log3)."""
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr >= 3.0:
        theta = 0.0
    elif tr <= -1.0:
        theta = PI
    else:
        theta = math.acos((tr - 1.0) / 2.0)
    if theta >= PI - 1e-2:
        cphi = math.cos(theta - PI)
        beta = theta * theta / (1.0 + cphi)
        t0 = (R[0, 0] + cphi) * beta
        t1 = (R[1, 1] + cphi) * beta
        t2 = (R[2, 2] + cphi) * beta
        out[0] = (1.0 if R[2, 1] > R[1, 2] else -1.0) * (math.sqrt(t0) if t0 > 0.0 else 0.0)
        out[1] = (1.0 if R[0, 2] > R[2, 0] else -1.0) * (math.sqrt(t1) if t1 > 0.0 else 0.0)
        out[2] = (1.0 if R[1, 0] > R[0, 1] else -1.0) * (math.sqrt(t2) if t2 > 0.0 else 0.0)
    else:
        if theta < 1e-4:
            f = 0.5 + theta * theta / 12.0
        else:
            f = theta / (2.0 * math.sin(theta))
        out[0] = f * (R[2, 1] - R[1, 2])
        out[1] = f * (R[0, 2] - R[2, 0])
        out[2] = f * (R[1, 0] - R[0, 1])
    return theta


@njit(cache=True)
def jlog3(theta, w, out):  # pragma: no cover
    """Jacobian (3, 3) of log3 at a rotation with angle ``theta`` and rotation vector ``w`` (pinocchio's Jlog3)."""
    if theta < 6.0e-6:
        alpha = 1.0 / 12.0 + theta * theta / 720.0
        diag = 1.0 - theta * theta / 12.0
    else:
        st = math.sin(theta)
        ct = math.cos(theta)
        st_1mct = st / (1.0 - ct)
        alpha = 1.0 / (theta * theta) - st_1mct / (2.0 * theta)
        diag = 0.5 * theta * st_1mct
    for a in range(3):
        for b in range(3):
            out[a, b] = alpha * w[a] * w[b]
        out[a, a] += diag
    out[0, 1] -= 0.5 * w[2]
    out[0, 2] += 0.5 * w[1]
    out[1, 0] += 0.5 * w[2]
    out[1, 2] -= 0.5 * w[0]
    out[2, 0] -= 0.5 * w[1]
    out[2, 1] += 0.5 * w[0]


@njit(cache=True)
def _clip01(x):  # pragma: no cover
    return min(max(x, 0.0), 1.0)


@njit(cache=True)
def segment_params(p1, q1, p2, q2):  # pragma: no cover
    """Parameters (s, t) of the closest points of segments [p1, q1] and [p2, q2] (each (3,)).

    The same clamped solution, branch for branch, as :func:`pipeline.retarget.tasks.segment_closest_points`.
    """
    eps = 1e-12
    a = b = c = e = f = 0.0
    for k in range(3):
        d1 = q1[k] - p1[k]
        d2 = q2[k] - p2[k]
        r = p1[k] - p2[k]
        a += d1 * d1
        b += d1 * d2
        c += d1 * r
        e += d2 * d2
        f += d2 * r
    a_ok = a > eps
    e_ok = e > eps
    a_s = a if a_ok else 1.0
    e_s = e if e_ok else 1.0
    denom = a * e - b * b
    if denom > eps * max(a * e, eps):
        s = _clip01((b * f - c * e) / denom)
    else:
        s = 0.0
    if not e_ok:
        s = _clip01(-c / a_s)
    t = (b * s + f) / e_s if e_ok else 0.0
    if t < 0.0:
        s = _clip01(-c / a_s)
    elif t > 1.0:
        s = _clip01((b - c) / a_s)
    t = _clip01(t)
    if not a_ok:
        s = 0.0
    if not e_ok:
        t = 0.0
    return s, t


@njit(cache=True)
def _point(rot, pos, slot, local, out):  # pragma: no cover
    for a in range(3):
        out[a] = (
            pos[slot, a]
            + rot[slot, a, 0] * local[0]
            + rot[slot, a, 1] * local[1]
            + rot[slot, a, 2] * local[2]
        )


@njit(cache=True)
def _normal_row(J, mask_row, x, n, out):  # pragma: no cover
    """out (nv,) += n^T J_x for a point x on a body whose supporting columns are ``mask_row``: n^T J_v + (x x n)^T J_w."""
    xn0 = x[1] * n[2] - x[2] * n[1]
    xn1 = x[2] * n[0] - x[0] * n[2]
    xn2 = x[0] * n[1] - x[1] * n[0]
    for v in range(J.shape[1]):
        if mask_row[v] != 0.0:
            out[v] += (
                n[0] * J[0, v]
                + n[1] * J[1, v]
                + n[2] * J[2, v]
                + xn0 * J[3, v]
                + xn1 * J[4, v]
                + xn2 * J[5, v]
            )


@njit(cache=True)
def _rank_one(H, g, row, res, cols, n):  # pragma: no cover
    """Upper triangle of H += row row^T and g += row res, over the (ascending) nonzero columns cols[:n]."""
    for ii in range(n):
        i = cols[ii]
        ai = row[i]
        g[i] += ai * res
        for jj in range(ii, n):
            j = cols[jj]
            H[i, j] += ai * row[j]


@njit(cache=True)
def _rank_one_weighted(H, g, wrow, row, res, cols, n):  # pragma: no cover
    """Upper triangle of H += wrow row^T and g += wrow res, over the (ascending) nonzero columns cols[:n]."""
    for ii in range(n):
        i = cols[ii]
        ai = wrow[i]
        g[i] += ai * res
        for jj in range(ii, n):
            j = cols[jj]
            H[i, j] += ai * row[j]


@njit(cache=True)
def _keep_out(dist, margin):  # pragma: no cover
    """Lower bound on the linearised change of a distance (see :func:`pipeline.retarget.ik._keep_out`)."""
    if dist < 0.0:
        return margin - dist
    return min(dist, margin) - dist


@njit(cache=True)
def _pair_closest(ends, g, i, j, near_sq, c1, c2):  # pragma: no cover
    """Closest points ``c1``, ``c2`` of capsule axes i and j (ends a = ends[:g], b = ends[g:]) and their
    distance; -1.0 (nothing written) when the axes' mid points are ``near_sq`` or more apart (squared, x4)."""
    d2 = 0.0
    for a in range(3):
        d = ends[i, a] + ends[g + i, a] - ends[j, a] - ends[g + j, a]
        d2 += d * d
    if d2 >= near_sq:
        return -1.0
    s, t = segment_params(ends[i], ends[g + i], ends[j], ends[g + j])
    nrm = 0.0
    for a in range(3):
        c1[a] = ends[i, a] + s * (ends[g + i, a] - ends[i, a])
        c2[a] = ends[j, a] + t * (ends[g + j, a] - ends[j, a])
        nrm += (c1[a] - c2[a]) ** 2
    return math.sqrt(nrm)


@njit(cache=True)
def penetrates(
    rot, pos, end_slot, end_local, end_radius, pair_i, pair_j, pair_touch_sq, pair_rad
):  # pragma: no cover
    """Whether a capsule end sphere is below z = 0 or two capsules of a pair overlap (distance < radii sum).

    Capsule ends: a = ends[:G], b = ends[G:] of ``end_slot`` (2G,), ``end_local`` (2G, 3).
    """
    n2 = end_slot.shape[0]
    g = n2 // 2
    ends = np.empty((n2, 3))
    for e in range(n2):
        _point(rot, pos, end_slot[e], end_local[e], ends[e])
        if ends[e, 2] - end_radius[e] < 0.0:
            return True
    c1 = np.empty(3)
    c2 = np.empty(3)
    for p in range(pair_i.shape[0]):
        nrm = _pair_closest(ends, g, pair_i[p], pair_j[p], pair_touch_sq[p], c1, c2)
        if nrm >= 0.0 and nrm < pair_rad[p]:
            return True
    return False


@njit(cache=True)
def assemble(  # pragma: no cover
    J, rot, pos, mask, support, n_support,
    kp_slot, kp_local, sqrt_wp, target_pos,
    rot_slot, rot_local, sqrt_wr, target_rot,
    sole_slot, sole_local, plant, anchor,
    end_slot, end_local, end_radius,
    pair_i, pair_j, pair_act_sq, pair_rad,
    q, q_default, dprev, lower, upper, vmax, limit_velocity,
    reg, previous_weight, default_weight, bound_step, root_step,
    act, floor_margin, collision_margin, plant_height, plant_tolerance, plant_weight, roll_lift,
    A, H, g, lb, ub, C, cl, cu,
):  # fmt: skip
    """Write one iteration's QP (see :mod:`pipeline.retarget.ik`) into H, g, lb, ub and C[:m], cl[:m], cu[:m].

    Kinematics at q: ``J`` (6, nv), ``rot`` (U, 3, 3), ``pos`` (U, 3) per joint slot, ``mask`` (U, nv) 1.0 on
    the columns that move a slot, ``support`` (U, nv) those columns ascending, ``n_support`` (U,) how many.
    Keypoints: ``kp_slot`` (K,), ``kp_local`` (K, 3), ``sqrt_wp`` (K,) root weights, ``target_pos`` (K, 3);
    orientation tasks: ``rot_slot`` (O,), ``rot_local`` (O, 3, 3), ``sqrt_wr`` (O,), ``target_rot`` (O, 3, 3).
    Feet: ``sole_slot`` (2,), ``sole_local`` (2, 3, 3) heel/centre/toe, ``plant`` (2,) modes, ``anchor``
    (2, 3, 2) held xy (NaN: not held). Capsules: ends a then b, ``end_slot`` (2G,), ``end_local`` (2G, 3),
    ``end_radius`` (2G,); pairs ``pair_i``, ``pair_j`` (P,) with their broad-phase squared thresholds
    ``pair_act_sq`` and radius sums ``pair_rad``.
    ``dprev``: difference(q_prev, q); velocity bounds (``vmax`` per hinge, relative to the previous frame) apply
    when ``limit_velocity``; ``bound_step`` / ``root_step``: the trust region of hinges / root coordinates.
    Outputs: ``A`` (3K + 3O, nv) scratch, H (nv, nv), g, lb, ub (nv,), C (rows, nv), cl, cu (rows,).
    Rows of C: floor rows (capsule end spheres near the floor), the planted-feet rows, then capsule pairs.
    Returns (m, number of floor rows, number of plant rows).
    """
    nv = J.shape[1]
    k = kp_slot.shape[0]
    o = rot_slot.shape[0]
    x = np.empty(3)
    # Cost rows: weighted keypoint position rows then orientation rows, A (3K + 3O, nv) and residual r, written
    # only in the columns that move the row's body (``support``); H = A^T A and g = A^T r accumulate row by
    # row over those columns (upper triangle, mirrored below at the end).
    nr = 3 * (k + o)
    r = np.empty(nr)
    H[:] = 0.0
    g[:] = 0.0
    for p in range(k):
        s = kp_slot[p]
        _point(rot, pos, s, kp_local[p], x)
        w = sqrt_wp[p]
        for a in range(3):
            r[3 * p + a] = w * (x[a] - target_pos[p, a])
        for ii in range(n_support[s]):
            v = support[s, ii]
            # J_x = J_v + J_w x x
            A[3 * p, v] = w * (J[0, v] + J[4, v] * x[2] - J[5, v] * x[1])
            A[3 * p + 1, v] = w * (J[1, v] + J[5, v] * x[0] - J[3, v] * x[2])
            A[3 * p + 2, v] = w * (J[2, v] + J[3, v] * x[1] - J[4, v] * x[0])
        for a in range(3):
            _rank_one(H, g, A[3 * p + a], r[3 * p + a], support[s], n_support[s])
    rb = np.empty((3, 3))
    e = np.empty((3, 3))
    err = np.empty(3)
    jl = np.empty((3, 3))
    m3 = np.empty((3, 3))
    for p in range(o):
        s = rot_slot[p]
        for a in range(3):
            for b in range(3):
                rb[a, b] = (
                    rot[s, a, 0] * rot_local[p, 0, b]
                    + rot[s, a, 1] * rot_local[p, 1, b]
                    + rot[s, a, 2] * rot_local[p, 2, b]
                )
        for a in range(3):
            for b in range(3):
                e[a, b] = (
                    target_rot[p, 0, a] * rb[0, b]
                    + target_rot[p, 1, a] * rb[1, b]
                    + target_rot[p, 2, a] * rb[2, b]
                )
        theta = log3(e, err)
        jlog3(theta, err, jl)
        # d log / dq = Jlog3 R^T J_w
        for a in range(3):
            for b in range(3):
                m3[a, b] = jl[a, 0] * rb[b, 0] + jl[a, 1] * rb[b, 1] + jl[a, 2] * rb[b, 2]
        w = sqrt_wr[p]
        row = 3 * (k + p)
        for a in range(3):
            r[row + a] = w * err[a]
            for ii in range(n_support[s]):
                v = support[s, ii]
                A[row + a, v] = w * (m3[a, 0] * J[3, v] + m3[a, 1] * J[4, v] + m3[a, 2] * J[5, v])
            _rank_one(H, g, A[row + a], r[row + a], support[s], n_support[s])
    # Box: the root moves at most root_step per coordinate; hinges within their bounds and the trust region
    # (never excluding 0, so the current pose stays feasible).
    for v in range(6):
        lb[v] = -root_step
        ub[v] = root_step
    for v in range(6, nv):
        lo = lower[v - 6] - q[v + 1]
        hi = upper[v - 6] - q[v + 1]
        if limit_velocity:
            lo = max(lo, -vmax[v - 6] - dprev[v])
            hi = min(hi, vmax[v - 6] - dprev[v])
        lb[v] = min(max(lo, -bound_step), 0.0)
        ub[v] = max(min(hi, bound_step), 0.0)
    m = 0
    # Floor rows: capsule end spheres above z = 0.
    n_end = end_slot.shape[0]
    ends = np.empty((n_end, 3))
    for p in range(n_end):
        s = end_slot[p]
        _point(rot, pos, s, end_local[p], ends[p])
        clear = ends[p, 2] - end_radius[p]
        if clear < act:
            for v in range(nv):
                C[m, v] = (J[2, v] + J[3, v] * ends[p, 1] - J[4, v] * ends[p, 0]) * mask[s, v]
            cl[m] = _keep_out(clear, floor_margin)
            cu[m] = INF
            m += 1
    n_floor = m
    # Planted feet: held sole points stay below plant_height, rolling feet keep the free end roll_lift higher,
    # held points stay within plant_tolerance of their anchors (and are pulled onto them by a stiff cost).
    sx = np.empty((3, 3))
    wrow = np.empty(nv)
    for f in range(2):
        mode = plant[f]
        if mode == FREE:
            continue
        s = sole_slot[f]
        for i in range(3):
            _point(rot, pos, s, sole_local[f, i], sx[i])
        # Held points: heel and toe when flat, the planted end when rolling.
        if mode == FLAT:
            held_pts = (0, 2)
        elif mode == HEEL:
            held_pts = (0, -1)
        else:
            held_pts = (2, -1)
        for i in held_pts:
            if i < 0:
                continue
            for v in range(nv):
                C[m, v] = (J[2, v] + J[3, v] * sx[i, 1] - J[4, v] * sx[i, 0]) * mask[s, v]
            cl[m] = -INF
            cu[m] = plant_height - sx[i, 2]
            m += 1
        if mode != FLAT:
            i = held_pts[0]
            other = 2 if mode == HEEL else 0
            for v in range(nv):
                zi = J[2, v] + J[3, v] * sx[i, 1] - J[4, v] * sx[i, 0]
                zo = J[2, v] + J[3, v] * sx[other, 1] - J[4, v] * sx[other, 0]
                C[m, v] = (zo - zi) * mask[s, v]
            cl[m] = roll_lift - (sx[other, 2] - sx[i, 2])
            cu[m] = INF
            m += 1
        for i in held_pts:
            if i < 0 or math.isnan(anchor[f, i, 0]):
                continue
            for v in range(nv):
                if mask[s, v] != 0.0:
                    C[m, v] = J[0, v] + J[4, v] * sx[i, 2] - J[5, v] * sx[i, 1]
                    C[m + 1, v] = J[1, v] + J[5, v] * sx[i, 0] - J[3, v] * sx[i, 2]
                else:
                    C[m, v] = 0.0
                    C[m + 1, v] = 0.0
            for a in range(2):
                cl[m + a] = anchor[f, i, a] - plant_tolerance - sx[i, a]
                cu[m + a] = anchor[f, i, a] + plant_tolerance - sx[i, a]
                # Stiff anchor cost on the held row: H += w c c^T, g += w c (x - anchor).
                for ii in range(n_support[s]):
                    v = support[s, ii]
                    wrow[v] = plant_weight * C[m + a, v]
                _rank_one_weighted(H, g, wrow, C[m + a], sx[i, a] - anchor[f, i, a], support[s], n_support[s])
            m += 2
    n_plant = m - n_floor
    # H: mirror the upper triangle, add the damping/posture diagonal; g: the posture terms.
    for i in range(nv):
        for j in range(i + 1, nv):
            H[j, i] = H[i, j]
        H[i, i] += reg[i]
        g[i] += previous_weight * dprev[i]
        if i >= 6:
            g[i] += default_weight * (q[i + 1] - q_default[i + 1])
    # Self-collision: broad phase on capsule mid points, then segment distances; rows for pairs closer than act.
    g_caps = n_end // 2
    c1 = np.empty(3)
    c2 = np.empty(3)
    nn = np.empty(3)
    for p in range(pair_i.shape[0]):
        i, j = pair_i[p], pair_j[p]
        nrm = _pair_closest(ends, g_caps, i, j, pair_act_sq[p], c1, c2)
        if nrm < 0.0:
            continue
        dist = nrm - pair_rad[p]
        if dist >= act:
            continue
        inv = 1.0 / max(nrm, 1e-9)
        for a in range(3):
            nn[a] = (c1[a] - c2[a]) * inv
        C[m, :] = 0.0
        _normal_row(J, mask[end_slot[i]], c1, nn, C[m])
        for a in range(3):
            nn[a] = -nn[a]
        _normal_row(J, mask[end_slot[j]], c2, nn, C[m])
        cl[m] = _keep_out(dist, collision_margin)
        cu[m] = INF
        m += 1
    return m, n_floor, n_plant
