"""Tracking errors: the local error ignores where the whole body went, the global one does not."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.sim.terms import relative_reference, tracking_errors


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
