"""Tracking errors: the local error ignores where the whole body went, the global one does not; the drift
splits where it went into heading, pace and sideways."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.sim.terms import drift, relative_reference, tracking_errors


def _wxyz(r: Rotation) -> np.ndarray:
    return np.roll(r.as_quat(), 1, axis=-1)


def test_local_error_is_posture_only():
    rng = np.random.default_rng(0)
    k = 6
    pos = rng.normal(size=(1, k, 3)) * [0.3, 0.3, 0.5] + [0, 0, 0.8]
    rots = Rotation.from_rotvec(rng.normal(size=(k, 3)) * 0.3)
    ref = {"body_pos_w": pos, "body_quat_w": _wxyz(rots)[None]}
    anchor, tracked = 0, np.arange(k)
    # the same posture, turned 0.5 rad about the vertical through the anchor and moved 0.3 m, -0.2 m
    turn = Rotation.from_euler("z", 0.5)
    moved = turn.apply(pos[0] - pos[0, anchor]) + pos[0, anchor] + [0.3, -0.2, 0.0]
    state = {"body_pos_w": moved[None], "anchor_pos_w": moved[None, anchor],
             "anchor_quat_w": _wxyz(turn * rots[anchor])[None]}  # fmt: skip
    glob, local = tracking_errors(ref, state, tracked, relative_reference(ref, state, anchor, tracked)[0])
    assert glob[0] > 0.3 and local[0] < 1e-9
    # one body 0.12 m off in height: the local error sees exactly that share
    state["body_pos_w"] = state["body_pos_w"].copy()
    state["body_pos_w"][0, 3, 2] += 0.12
    _, local = tracking_errors(ref, state, tracked, relative_reference(ref, state, anchor, tracked)[0])
    np.testing.assert_allclose(local[0], 0.12 / k, atol=1e-9)


def test_drift_splits_heading_pace_and_sideways():
    # the reference anchor heads 30 deg left of +x; the robot's is 0.3 m ahead of it, 0.1 m to its right,
    # and turned 4 deg further left
    heading = np.radians(30.0)
    ref_rot = Rotation.from_euler("ZY", [heading, 0.2])  # pitched too: its heading stays 30 deg
    fwd = np.array([np.cos(heading), np.sin(heading), 0.0])
    left = np.array([-np.sin(heading), np.cos(heading), 0.0])
    ref = {"body_pos_w": np.array([[[1.0, 2.0, 0.9]]]), "body_quat_w": _wxyz(ref_rot)[None, None]}
    state = {"anchor_pos_w": ref["body_pos_w"][:, 0] + 0.3 * fwd - 0.1 * left + [0, 0, 0.05],
             "anchor_quat_w": _wxyz(Rotation.from_euler("z", np.radians(4.0)) * ref_rot)[None]}  # fmt: skip
    d = drift(ref, state, 0)
    np.testing.assert_allclose(np.degrees(d["heading_err"]), [4.0], atol=1e-9)
    np.testing.assert_allclose(d["drift_along_m"], [0.3], atol=1e-12)
    np.testing.assert_allclose(d["drift_across_m"], [0.1], atol=1e-12)
