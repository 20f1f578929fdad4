"""Geometry of video extraction: landmarks -> canonical keypoints, a constant-length skeleton fitted to
them, the root's camera-frame path, the up direction, foot contacts and the floor, segment rotations.

Pure functions over arrays; the steps are described in :mod:`pipeline.motion.video`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from pipeline.geometry import matrix_to_quat
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS

# MediaPipe BlazePose landmark indices.
NOSE, L_EAR, R_EAR = 0, 7, 8
L_SH, R_SH, L_EL, R_EL, L_WR, R_WR = 11, 12, 13, 14, 15, 16
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANK, R_ANK = 23, 24, 25, 26, 27, 28
L_FOOT, R_FOOT = 31, 32
# Landmarks the canonical keypoints are made of (their visibility is the frame's confidence).
USED = (NOSE, L_EAR, R_EAR, L_SH, R_SH, L_EL, R_EL, L_WR, R_WR, L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANK, R_ANK)
# Where the points without a landmark sit (shares of hip centre -> shoulder centre, ankle -> foot tip), set so
# the keypoints mean what every mocap reader's do: the rig's root at the hip joints' level, the head joint at
# the ears. Measured on the rendered ground-truth videos (benchmarks/video_accuracy.py), the earlier 0.2 / 0.7 /
# halfway-to-the-ears put the pelvis 58-82 mm too high and the head 58-81 mm too low on all five clips.
PELVIS_RATIO, TORSO_RATIO, TOE_RATIO = 0.05, 0.8, 0.75
# Weight of a landmark (in the root solve and the image smoothing): its visibility ** CONFIDENCE_POWER.
CONFIDENCE_POWER = 2.0
# An elbow or wrist closer to its other-side twin in the image than this share of the body's image size is
# hidden behind it when it is the less visible of the two (see overlap_hidden).
OVERLAP = 0.15
# Parent of each limb landmark (elbow <- shoulder, wrist <- elbow, hand points <- wrist, knee <- hip, ...):
# limb landmarks are smoothed as offsets from their parent (see smooth_image).
LANDMARK_PARENT = {
    **{el: sh for sh, el in ((L_SH, L_EL), (R_SH, R_EL))},
    **{wr: el for el, wr in ((L_EL, L_WR), (R_EL, R_WR))},
    **{h: L_WR for h in (17, 19, 21)},
    **{h: R_WR for h in (18, 20, 22)},
    **{kn: hp for hp, kn in ((L_HIP, L_KNEE), (R_HIP, R_KNEE))},
    **{an: kn for kn, an in ((L_KNEE, L_ANK), (R_KNEE, R_ANK))},
    **{f: L_ANK for f in (29, L_FOOT)},
    **{f: R_ANK for f in (30, R_FOOT)},
}


def lowpass(x: np.ndarray, fps: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase Gaussian low-pass over axis 0 (-3 dB at ``cutoff_hz``)."""
    sigma = 0.1325 * fps / cutoff_hz
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest") if sigma > 0.3 and x.shape[0] > 2 else x


def weighted_smooth(
    x: np.ndarray, weight: np.ndarray, fps: float, cutoff_hz: float, *, velocity_tau_s: float = 0.5
) -> np.ndarray:
    """Confidence-weighted zero-phase smoothing over axis 0: a Rauch-Tung-Striebel smoother of a
    near-constant-velocity model, run on every channel of ``x`` (T, ...) independently.

    A sample of weight ``w`` (``weight`` has ``x``'s leading dims, e.g. (T, N) for (T, N, 2)) is a measurement
    of variance ``1 / w`` (weights under 1e-12 count as 1e-12). At ``w = 1`` throughout, the response is
    close to ``1 / (1 + (sqrt(2) - 1) (f / f_c)^4)``: -3 dB at ``f_c = cutoff_hz`` like :func:`lowpass`,
    steeper above. A stretch of weight ``w`` is smoothed as if cut off at about ``f_c w^(1/4)``, so a stretch
    of low weights is bridged by a smooth path through its confident neighbours instead of following its own
    samples. The velocity decays with time constant ``velocity_tau_s`` when nothing confident is seen, so a
    channel that ends (or starts) unseen drifts at most its last velocity times ``velocity_tau_s`` away from
    its last confident position instead of running off.
    """
    t = x.shape[0]
    if t < 3:
        return x
    flat = x.reshape(t, -1).astype(float)
    n = flat.shape[1]
    w = np.broadcast_to(weight.reshape(weight.shape + (1,) * (x.ndim - weight.ndim)), x.shape).reshape(t, n)
    r = 1.0 / np.maximum(w, 1e-12)
    dt = 1.0 / fps
    a = float(np.exp(-dt / velocity_tau_s))  # velocity decay per frame
    q = (2 * np.pi * cutoff_hz) ** 4 * dt / (np.sqrt(2.0) - 1.0)  # acceleration noise density (unit R)
    q11, q12, q22 = q * dt**3 / 3, q * dt**2 / 2, q * dt
    xf = np.empty((t, 2, n))  # filtered state (position, velocity)
    pf = np.empty((t, 3, n))  # its covariance (p11, p12, p22)
    pp = np.empty((t, 3, n))  # predicted covariance
    s0 = flat[np.argmax(w, axis=0), np.arange(n)]  # prior mean: the most confident sample
    s1 = np.zeros(n)
    c11, c12, c22 = np.full(n, 1e8), np.zeros(n), np.full(n, 1e8)
    for k in range(t):
        if k > 0:  # predict with F = [[1, dt], [0, a]]
            s0, s1 = s0 + dt * s1, a * s1
            c11, c12, c22 = (
                c11 + 2 * dt * c12 + dt * dt * c22 + q11,
                a * (c12 + dt * c22) + q12,
                a * a * c22 + q22,
            )
        pp[k] = c11, c12, c22
        k0, k1 = c11 / (c11 + r[k]), c12 / (c11 + r[k])
        innov = flat[k] - s0
        s0, s1 = s0 + k0 * innov, s1 + k1 * innov
        c11, c12, c22 = (1 - k0) * c11, (1 - k0) * c12, c22 - k1 * c12
        xf[k], pf[k] = (s0, s1), (c11, c12, c22)
    out = np.empty_like(flat)
    out[-1] = s0
    for k in range(t - 2, -1, -1):
        # smoother gain G = P_f F^T P_p(k+1)^-1, with P_f F^T = [[f11, f12], [f21, f22]]
        a11, a12, a22 = pf[k]
        b11, b12, b22 = pp[k + 1]
        det = b11 * b22 - b12 * b12
        f11, f12, f21, f22 = a11 + dt * a12, a * a12, a12 + dt * a22, a * a22
        g11, g12 = (f11 * b22 - f12 * b12) / det, (f12 * b11 - f11 * b12) / det
        g21, g22 = (f21 * b22 - f22 * b12) / det, (f22 * b11 - f21 * b12) / det
        d0 = s0 - (xf[k, 0] + dt * xf[k, 1])  # smoothed minus predicted state at k + 1
        d1 = s1 - a * xf[k, 1]
        s0, s1 = xf[k, 0] + g11 * d0 + g12 * d1, xf[k, 1] + g21 * d0 + g22 * d1
        out[k] = s0
    return out.reshape(x.shape)


def overlap_hidden(image: np.ndarray, vis: np.ndarray, fps: float) -> np.ndarray:
    """(T, 33) visibility with the far one of an overlapping left/right pair set to 0 (unseen).

    Where a left/right pair of elbows or wrists is closer in the image (T, 33, 2) than ``OVERLAP`` times the
    body's image size (shoulders to hips to ankles, a running median over a second), the one of lower
    visibility is taken as hidden behind the other (neither, if they are equally visible): in a side view
    the pose model often puts the far arm on top of the near one, still with some visibility.
    """
    sh_c, hip_c = (image[:, L_SH] + image[:, R_SH]) / 2, (image[:, L_HIP] + image[:, R_HIP]) / 2
    an_c = (image[:, L_ANK] + image[:, R_ANK]) / 2
    size = np.linalg.norm(sh_c - hip_c, axis=-1) + np.linalg.norm(hip_c - an_c, axis=-1)
    size = median_filter(size, size=max(1, round(fps)) | 1, mode="nearest")
    out = vis.copy()
    for a, b in ((L_EL, R_EL), (L_WR, R_WR)):
        close = np.linalg.norm(image[:, a] - image[:, b], axis=-1) < OVERLAP * size
        out[close & (vis[:, a] < vis[:, b]), a] = 0.0
        out[close & (vis[:, b] < vis[:, a]), b] = 0.0
    return out


def smooth_image(image: np.ndarray, vis: np.ndarray, fps: float, cutoff_hz: float) -> np.ndarray:
    """(T, 33, 2) image landmarks smoothed by confidence, (T, 33) visibility (0 where nothing was seen).

    Each limb landmark is smoothed as its offset from its parent landmark (:data:`LANDMARK_PARENT`), the
    others (face, shoulders, hips) as they are, by :func:`weighted_smooth` with weights
    ``visibility ** CONFIDENCE_POWER``; the limbs are then chained back from the trunk. A hidden hand thus
    keeps (or moves smoothly between) the pose relative to its elbow that it had where it was seen, while
    the body carries it along, instead of following the model's guesses.
    """
    rel = image.copy()
    for child, parent in LANDMARK_PARENT.items():
        rel[:, child] = image[:, child] - image[:, parent]
    smooth = weighted_smooth(rel, np.clip(vis, 0.0, 1.0) ** CONFIDENCE_POWER, fps, cutoff_hz)
    out = smooth.copy()
    for child, parent in LANDMARK_PARENT.items():  # parents come before their children
        out[:, child] = out[:, parent] + smooth[:, child]
    return out


def canonical_points(lm: np.ndarray) -> np.ndarray:
    """(…, 33, 3) landmarks -> (…, 17, 3) canonical keypoints (see the module docstring)."""
    hip_c = (lm[..., L_HIP, :] + lm[..., R_HIP, :]) / 2
    sh_c = (lm[..., L_SH, :] + lm[..., R_SH, :]) / 2
    ear_c = (lm[..., L_EAR, :] + lm[..., R_EAR, :]) / 2
    p = {
        "pelvis": hip_c + PELVIS_RATIO * (sh_c - hip_c),
        "torso": hip_c + TORSO_RATIO * (sh_c - hip_c),
        "head": ear_c,
    }
    for side, (sh, el, wr, hip, kn, an, ft) in {
        "left": (L_SH, L_EL, L_WR, L_HIP, L_KNEE, L_ANK, L_FOOT),
        "right": (R_SH, R_EL, R_WR, R_HIP, R_KNEE, R_ANK, R_FOOT),
    }.items():
        p[f"{side}_shoulder"], p[f"{side}_elbow"], p[f"{side}_wrist"] = (
            lm[..., sh, :],
            lm[..., el, :],
            lm[..., wr, :],
        )
        p[f"{side}_hip"], p[f"{side}_knee"], p[f"{side}_ankle"] = (
            lm[..., hip, :],
            lm[..., kn, :],
            lm[..., an, :],
        )
        p[f"{side}_toe"] = lm[..., an, :] + TOE_RATIO * (lm[..., ft, :] - lm[..., an, :])
    return np.stack([p[n] for n in CANONICAL_JOINTS], axis=-2)


def bone_lengths(pos: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(J,) constant bone lengths (to the parent; 0 for the root): median over the confident frames, left
    and right averaged."""
    lengths = np.zeros(len(CANONICAL_JOINTS))
    good = weight > 0.5 * np.median(weight) if weight.size else weight
    if not good.any():
        good = np.ones_like(weight, dtype=bool)
    for j, par in enumerate(CANONICAL_PARENTS):
        if par >= 0:
            lengths[j] = float(np.median(np.linalg.norm(pos[good, j] - pos[good, par], axis=-1)))
    for j, name in enumerate(CANONICAL_JOINTS):
        if name.startswith("left_"):
            k = CANONICAL_JOINTS.index("right_" + name[5:])
            lengths[j] = lengths[k] = 0.5 * (lengths[j] + lengths[k])
    return lengths


def fit_skeleton(pos: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(T, J, 3) observed keypoints -> the skeleton with ``lengths`` along the observed bone directions."""
    out = np.empty_like(pos)
    out[:, 0] = pos[:, 0]
    for j, par in enumerate(CANONICAL_PARENTS):
        if par < 0:
            continue
        d = pos[:, j] - pos[:, par]
        n = np.linalg.norm(d, axis=-1, keepdims=True)
        out[:, j] = out[:, par] + lengths[j] * d / np.maximum(n, 1e-9)
    return out


def root_translation(
    world: np.ndarray, image: np.ndarray, weight: np.ndarray, intr: tuple[float, float, float, float]
) -> np.ndarray:
    """(T, 3) camera-frame position of the landmarks' origin from (T, N, 3) metric points, (T, N, 2) pixels.

    Minimises the weighted algebraic re-projection error, linear in the translation t:
    fx (X + tx) = (u - cx)(Z + tz) and fy (Y + ty) = (v - cy)(Z + tz).
    """
    fx, fy, cx, cy = intr
    u, v = image[..., 0] - cx, image[..., 1] - cy
    X, Y, Z = world[..., 0], world[..., 1], world[..., 2]
    zeros = np.zeros_like(u)
    ax = np.stack([np.full_like(u, fx), zeros, -u], axis=-1)  # (T, N, 3)
    ay = np.stack([zeros, np.full_like(v, fy), -v], axis=-1)
    bx, by = u * Z - fx * X, v * Z - fy * Y
    w = weight[..., None]
    ata = np.einsum("tni,tnj->tij", ax * w, ax) + np.einsum("tni,tnj->tij", ay * w, ay)
    atb = np.einsum("tni,tn->ti", ax * w, bx) + np.einsum("tni,tn->ti", ay * w, by)
    ata += 1e-9 * np.eye(3)
    return np.linalg.solve(ata, atb[..., None])[..., 0]


def onto_rays(
    points: np.ndarray, image: np.ndarray, t: np.ndarray, intr: tuple[float, float, float, float]
) -> np.ndarray:
    """(T, N, 3) metric points relative to the camera-frame origin ``t`` (T, 3), each moved at its own depth
    onto the camera ray through its image position (T, N, 2) pixels."""
    fx, fy, cx, cy = intr
    z = points[..., 2] + t[:, None, 2]
    x = (image[..., 0] - cx) * z / fx - t[:, None, 0]
    y = (image[..., 1] - cy) * z / fy - t[:, None, 1]
    return np.stack([x, y, points[..., 2]], axis=-1)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def up_direction(pos_c: np.ndarray, fps: float) -> tuple[np.ndarray, str]:
    """Unit up vector in camera coordinates and how it was found ('floor' or 'trunk')."""
    i = {n: k for k, n in enumerate(CANONICAL_JOINTS)}
    hip_c = (pos_c[:, i["left_hip"]] + pos_c[:, i["right_hip"]]) / 2
    sh_c = (pos_c[:, i["left_shoulder"]] + pos_c[:, i["right_shoulder"]]) / 2
    trunk = unit(np.median(unit(sh_c - hip_c), axis=0))
    feet = pos_c[:, [i["left_ankle"], i["left_toe"], i["right_ankle"], i["right_toe"]]]  # (T, 4, 3)
    up = trunk
    for _ in range(2):
        low = np.argmin(feet @ up, axis=1)
        pts = feet[np.arange(len(feet)), low]
        speed = (
            np.linalg.norm(np.gradient(pts, axis=0), axis=-1) * fps if len(pts) > 2 else np.zeros(len(pts))
        )
        pts = pts[speed < 0.3]
        if len(pts) < 10:
            return trunk, "trunk"
        centred = pts - pts.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        spread = s / np.sqrt(len(pts))
        if spread[1] < 0.25:
            return trunk, "trunk"
        normal = vt[2] if vt[2] @ trunk > 0 else -vt[2]
        if normal @ trunk < np.cos(np.radians(25)):
            return trunk, "trunk"
        up = normal
    return up, "floor"


def floor_from_contacts(
    pos_w: np.ndarray, image: np.ndarray, depth: np.ndarray, fx: float, fps: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Put the feet in contact on the floor: (T, J, 3) keypoints shifted per frame in z, and (T, 2) contacts.

    A foot is in contact when its image points (ankle, heel, toe tip) nearly stop (under ``CONTACT_SPEED``
    m/s at the subject's depth: immune to depth noise) and it is not clearly above the other foot. The floor
    height under the contact feet is interpolated across frames without contact, smoothed, and removed, so
    the root height follows the legs of the standing foot instead of the noisier depth estimate.
    """
    from pipeline.motion.process import ANKLE_HEIGHT_RATIO, TOE_HEIGHT_RATIO

    i = {n: k for k, n in enumerate(CANONICAL_JOINTS)}
    t = pos_w.shape[0]
    sole = np.empty((t, 2))
    speed = np.empty((t, 2))
    for s, (side, pts) in enumerate((("left", (L_ANK, 29, L_FOOT)), ("right", (R_ANK, 30, R_FOOT)))):
        sole[:, s] = np.minimum(
            pos_w[:, i[f"{side}_ankle"], 2] - ANKLE_HEIGHT_RATIO * height,
            pos_w[:, i[f"{side}_toe"], 2] - TOE_HEIGHT_RATIO * height,
        )
        px_s = (
            np.linalg.norm(np.gradient(image[:, list(pts)], axis=0), axis=-1) * fps
            if t > 2
            else np.zeros((t, 3))
        )
        speed[:, s] = px_s.min(axis=1) * depth / fx
    speed = lowpass(speed, fps, 4.0)
    contacts = (speed < CONTACT_SPEED) & (sole - sole.min(axis=1, keepdims=True) < CONTACT_RISE)
    has = contacts.any(axis=1)
    if has.sum() < 3:
        return pos_w, contacts
    floor = np.where(contacts, sole, 0.0).sum(axis=1) / np.maximum(contacts.sum(axis=1), 1)
    floor = np.interp(np.arange(t), np.flatnonzero(has), floor[has])
    floor = lowpass(floor, fps, 3.0)
    out = pos_w.copy()
    out[..., 2] -= floor[:, None]
    return out, contacts


def plant_feet(pos_w: np.ndarray, contacts: np.ndarray, fps: float, cutoff_hz: float = 0.3) -> np.ndarray:
    """Keep feet in contact from sliding: a complementary filter of the horizontal root path.

    Leg odometry (the body moved so the contact feet stay put) gives the fast part of the path, the
    camera-based path (no drift) the slow part, split at ``cutoff_hz``. (T, J, 3) -> (T, J, 3).
    """
    i = {n: k for k, n in enumerate(CANONICAL_JOINTS)}
    t = pos_w.shape[0]
    if t < 3 or not contacts.any():
        return pos_w
    vel = np.zeros((t, 2))
    for s, side in enumerate(("left", "right")):
        foot = 0.5 * (pos_w[:, i[f"{side}_ankle"], :2] + pos_w[:, i[f"{side}_toe"], :2])
        vel += np.where(contacts[:, s : s + 1], np.gradient(foot, axis=0), 0.0)
    vel /= np.maximum(contacts.sum(axis=1, keepdims=True), 1)
    shift = -np.cumsum(vel, axis=0)
    shift -= lowpass(shift, fps, cutoff_hz) if 0.1325 * fps / cutoff_hz < t else shift.mean(axis=0)
    out = pos_w.copy()
    out[..., :2] += shift[:, None, :]
    return out


def snap_feet(pos_w: np.ndarray, contacts: np.ndarray, fps: float, height: float) -> np.ndarray:
    """Lock each foot in contact: for each run of contact frames, the ankle stays still at the run's median
    position (at most ``LOCK_MAX`` m away horizontally) and height with the sole on the floor (z = 0), by
    two-bone leg IK (bone lengths kept, knee in its bend plane); the correction fades in and out over a
    frame or two at the ends of the run. (T, J, 3) -> (T, J, 3)."""
    from pipeline.motion.process import ANKLE_HEIGHT_RATIO, TOE_HEIGHT_RATIO

    i = {n: k for k, n in enumerate(CANONICAL_JOINTS)}
    out = pos_w.copy()
    for s, side in enumerate(("left", "right")):
        h, k, a, o = (i[f"{side}_{n}"] for n in ("hip", "knee", "ankle", "toe"))
        sole = np.minimum(
            out[:, a, 2] - ANKLE_HEIGHT_RATIO * height, out[:, o, 2] - TOE_HEIGHT_RATIO * height
        )
        weight = lowpass(contacts[:, s].astype(float), fps, 6.0)
        hip, knee, ankle = out[:, h], out[:, k], out[:, a]
        # per run of contact frames, the ankle's offset to its lock: the run's median ankle position (at most
        # LOCK_MAX away horizontally) at the run's median height with the sole on the floor; held for a few
        # frames beyond the run, where the contact weight fades it in and out
        on_floor = ankle[:, 2] - np.clip(sole, -0.1, 0.1)
        runs = segments(contacts[:, s], 0)
        offsets = []
        for start, stop in runs:
            d = np.median(ankle[start:stop, :2], axis=0) - ankle[start:stop, :2]
            n = np.linalg.norm(d, axis=-1, keepdims=True)
            dz = np.median(on_floor[start:stop]) - ankle[start:stop, 2]
            offsets.append(np.column_stack([d * np.minimum(1.0, LOCK_MAX / np.maximum(n, 1e-9)), dz]))
        lock = np.zeros((len(out), 3))
        for (start, stop), d in zip(runs, offsets, strict=True):
            lock[max(0, start - 3) : start] = d[0]
            lock[stop : stop + 3] = d[-1]
        for (start, stop), d in zip(runs, offsets, strict=True):
            lock[start:stop] = d
        shift = weight[:, None] * lock
        l1 = np.linalg.norm(knee - hip, axis=-1)
        l2 = np.linalg.norm(ankle - knee, axis=-1)
        target = ankle + shift
        d = np.linalg.norm(target - hip, axis=-1)
        d_ok = np.clip(d, np.abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4)
        u = (target - hip) / np.maximum(d, 1e-9)[:, None]
        target = hip + d_ok[:, None] * u
        along = (l1**2 - l2**2 + d_ok**2) / (2 * d_ok)
        across = np.sqrt(np.maximum(l1**2 - along**2, 0.0))
        bend = knee - hip
        bend = unit(bend - np.sum(bend * u, axis=-1, keepdims=True) * u)
        move = (np.abs(shift).max(axis=1) > 1e-6)[:, None]  # leave untouched what needs no correction
        out[:, k] = np.where(move, hip + along[:, None] * u + across[:, None] * bend, knee)
        out[:, o] += np.where(move, target - ankle, 0.0)
        out[:, a] = np.where(move, target, ankle)
    return out


def segments(on: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs [start, stop) of True in ``on``, merging across holes of at most ``max_gap`` frames."""
    idx = np.flatnonzero(on)
    if idx.size == 0:
        return []
    out = []
    start = prev = int(idx[0])
    for i in idx[1:]:
        if i - prev - 1 > max_gap:
            out.append((start, prev + 1))
            start = int(i)
        prev = int(i)
    out.append((start, prev + 1))
    return out


LOCK_MAX = 0.15  # m
CONTACT_SPEED = 0.5  # m/s
CONTACT_RISE = 0.12  # m


# Rest-pose (T-pose facing +x, z up) primary and secondary axes of each joint's segment frame.
_X, _Y, _Z = np.eye(3)
_FOOT = np.array([0.14, 0.0, -0.05]) / np.linalg.norm([0.14, 0.0, -0.05])  # ankle -> toe base, standing


def segment_rotations(p: np.ndarray, face_fwd: np.ndarray) -> np.ndarray:
    """(T, J, 4) world rotations relative to a T-pose facing +x, from (T, J, 3) world keypoints (z up)."""
    i = {n: k for k, n in enumerate(CANONICAL_JOINTS)}

    def perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
        return v - np.sum(v * axis, axis=-1, keepdims=True) * axis

    def frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = unit(a)
        b = unit(perp(b, a))
        return np.stack([a, b, np.cross(a, b)], axis=-1)

    def rel(a: np.ndarray, b: np.ndarray, a0: np.ndarray, b0: np.ndarray) -> np.ndarray:
        f0 = frame(a0[None], b0[None])[0]
        return frame(a, b) @ f0.T

    t = p.shape[0]
    rot = np.tile(np.eye(3), (t, len(CANONICAL_JOINTS), 1, 1))
    pel_left = p[:, i["left_hip"]] - p[:, i["right_hip"]]
    pel_up = p[:, i["torso"]] - p[:, i["pelvis"]]
    rot[:, i["pelvis"]] = rel(pel_up, pel_left, _Z, _Y)
    pel_fwd = unit(np.cross(pel_left, pel_up))
    chest_left = p[:, i["left_shoulder"]] - p[:, i["right_shoulder"]]
    chest_up = p[:, i["head"]] - p[:, i["torso"]]
    rot[:, i["torso"]] = rel(chest_up, chest_left, _Z, _Y)
    chest_fwd = unit(np.cross(chest_left, chest_up))
    rot[:, i["head"]] = rel(chest_up, face_fwd, _Z, _X)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        sh, el, wr = (p[:, i[f"{side}_{n}"]] for n in ("shoulder", "elbow", "wrist"))
        upper, fore = unit(el - sh), unit(wr - el)
        bend = perp(fore, upper) + 0.25 * perp(chest_fwd, upper)
        rot[:, i[f"{side}_shoulder"]] = rel(upper, bend, sgn * _Y, _X)
        rot[:, i[f"{side}_elbow"]] = rel(fore, bend, sgn * _Y, _X)
        rot[:, i[f"{side}_wrist"]] = rot[:, i[f"{side}_elbow"]]
        hip, kn, an, toe = (p[:, i[f"{side}_{n}"]] for n in ("hip", "knee", "ankle", "toe"))
        thigh, shank = unit(kn - hip), unit(an - kn)
        fwd = -perp(shank, thigh) + 0.25 * perp(pel_fwd, thigh)
        rot[:, i[f"{side}_hip"]] = rel(thigh, fwd, -_Z, _X)
        rot[:, i[f"{side}_knee"]] = rel(shank, fwd, -_Z, _X)
        rot[:, i[f"{side}_ankle"]] = rel(toe - an, kn - an, _FOOT, _Z)
        rot[:, i[f"{side}_toe"]] = rot[:, i[f"{side}_ankle"]]
    q = matrix_to_quat(rot)
    return np.where(q[..., :1] < 0, -q, q)
