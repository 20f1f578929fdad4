"""Reference clips at the policy rate: resampling, looping with the root advancing, bad input, sampling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.robot.model import mujoco_model
from pipeline.robot.spec import load_robot
from pipeline.sim.reference import AdaptiveSampler, MotionReference

from .sim_helpers import swing_motion

ROBOT = load_robot("g1")
BODIES = tuple(mujoco_model("g1").body(i).name for i in range(1, mujoco_model("g1").nbody))


def _ref(motions, names=None, dt=0.02):
    return MotionReference(motions, names or [f"c{i}" for i in range(len(motions))], dt, ROBOT, BODIES)


def test_cyclic_clip_loops_with_root_advancing():
    m = swing_motion(51, walk_speed=0.5, cyclic=True, yaw_rate=0.2)
    ref = _ref([m])
    period = ref.clip_len[0] - 1
    steps = np.arange(3 * period + 1)
    out = ref.at(np.zeros(steps.size, dtype=np.int64), steps)
    root = out["body_pos_w"][:, 0]
    # continuous across cycle boundaries (no jump back to the start), advancing as the clip moves
    jumps = np.linalg.norm(np.diff(root, axis=0), axis=1)
    assert jumps.max() < 3 * jumps.mean()
    assert root[-1, 0] > root[period, 0] > root[0, 0]
    # cycle 1 starts where cycle 0 ended
    np.testing.assert_allclose(out["body_pos_w"][period], m.body_pos_w[-1], atol=1e-9)
    assert not out["done"].any()


def test_non_cyclic_clip_ends_and_resamples_to_control_rate():
    m = swing_motion(31, fps=30.0)  # 1 s at 30 fps -> 51 frames at 50 Hz
    ref = _ref([m])
    assert ref.clip_len[0] == 51
    np.testing.assert_allclose(ref.joint_pos[-1], m.dof_pos[-1], atol=1e-12)
    out = ref.at(np.zeros(2, dtype=np.int64), np.array([10, 80]))
    assert out["done"].tolist() == [False, True]


def test_bad_motions_are_clear_errors():
    m = swing_motion(20)
    with pytest.raises(InputError, match="robot 'h1'"):
        _ref([dataclasses.replace(m, robot="h1")])
    with pytest.raises(InputError, match="shorter than one policy step"):
        _ref([swing_motion(2, fps=200.0)])
    bad = m.dof_pos.copy()
    bad[5, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        _ref([dataclasses.replace(m, dof_pos=bad)])
    with pytest.raises(InputError, match="joint names"):
        _ref([dataclasses.replace(m, joint_names=tuple(reversed(m.joint_names)))])


def test_adaptive_sampler_favours_failing_bins():
    ref = _ref([swing_motion(201)])  # 4 s, bins of 0.5 s -> 8 bins
    sampler = AdaptiveSampler(ref, 0.5, 0.1, 0.5, True, np.random.default_rng(0))
    assert len(sampler.failure) == 8
    # episodes fail in the bin starting at frame 125 (2.5 s), succeed elsewhere
    clip = np.zeros(64, dtype=np.int64)
    frames = np.arange(64) * 3
    for _ in range(5):
        sampler.update(clip, frames, (frames // 25) == 5)
    p = sampler.probabilities()
    assert p.argmax() == 5 and p[5] > 0.8
    _, start = sampler.sample(2000)
    assert np.mean(start // 25 == 5) > 0.8
    uniform = AdaptiveSampler(ref, 0.5, 0.1, 0.5, False, np.random.default_rng(0))
    uniform.failure[:] = sampler.failure
    np.testing.assert_allclose(uniform.probabilities(), 1 / 8)


def test_cyclic_clip_seam_is_closed():
    """A gait cycle whose last frame differs from its first (joints, root height, pitch) loops without a jump:
    the difference is spread over the cycle, and the bodies follow by forward kinematics."""
    m = swing_motion(51, walk_speed=0.5, cyclic=True, yaw_rate=0.2)
    q = m.qpos.copy()
    ramp = np.linspace(0.0, 1.0, m.num_frames)
    q[:, 7 + 3] += 0.3 * ramp  # knee drifts 0.3 rad over the cycle
    q[:, 2] += 0.02 * ramp
    pitch = 0.1 * ramp
    tilt = np.stack([np.cos(pitch / 2), 0 * pitch, np.sin(pitch / 2), 0 * pitch], -1)
    from pipeline.geometry import quat_mul

    q[:, 3:7] = quat_mul(q[:, 3:7], tilt)
    from pipeline.robot.motion import RobotMotion

    seam = dataclasses.replace(RobotMotion.from_qpos("g1", q, m.fps), source={"cyclic": True})
    ref = _ref([seam])
    period = ref.clip_len[0] - 1
    np.testing.assert_allclose(ref.joint_pos[-1], ref.joint_pos[0], atol=1e-9)
    out = ref.at(np.zeros(3, dtype=np.int64), np.array([period - 1, period, period + 1]))
    body = out["body_pos_w"]
    # the step across the seam is as long as the steps beside it (no jump back of the knee, shin or foot)
    steps = np.linalg.norm(np.diff(body, axis=0), axis=-1).max(1)
    assert steps[1] < 2 * steps[0] + 1e-3, steps
    # the knee's joint velocity at the seam is the wrapped central difference, not a one-sided jump
    assert abs(ref.joint_vel[0, 3]) < 1.0
    # a non-cyclic clip is left as it is
    plain = _ref([dataclasses.replace(seam, source={})])
    np.testing.assert_allclose(plain.joint_pos[-1, 3] - plain.joint_pos[0, 3], 0.3, atol=1e-9)
