"""Processing: resampling, slerp, floor, facing, contacts with hysteresis, height, processed-npz round trip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pybullet_data
import pytest
from scipy.spatial.transform import Rotation

from pipeline.geometry import from_rotation, quat_mul, quat_rotate, yaw_quat
from pipeline.motion import read_clip
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, HumanMotion
from pipeline.motion.process import (
    ContactConfig,
    align_floor,
    detect_contacts,
    face_forward,
    facing_yaw,
    hysteresis,
    resample,
    rest_correction,
    slerp,
)

WALK = Path(pybullet_data.getDataPath()) / "data" / "motions" / "humanoid3d_walk.txt"
J = len(CANONICAL_JOINTS)


def _motion(t: int, fps: float, pos: np.ndarray | None = None, quat: np.ndarray | None = None) -> HumanMotion:
    base = read_clip(WALK).pos_w[0]
    return HumanMotion(
        fps=fps,
        joint_names=CANONICAL_JOINTS,
        parents=np.array(CANONICAL_PARENTS),
        pos_w=np.broadcast_to(base, (t, J, 3)).copy() if pos is None else pos,
        quat_w=np.tile([1.0, 0, 0, 0], (t, J, 1)) if quat is None else quat,
        contacts=np.zeros((t, 2), dtype=bool),
        subject_height=1.7,
    )


@pytest.mark.parametrize(("src", "dst"), [(120.0, 50.0), (30.0, 50.0), (60.0, 60.0)])
def test_resample_is_exact_for_linear_motion_and_constant_spin(src: float, dst: float) -> None:
    t = 121
    s = np.arange(t) / src
    vel = np.array([1.2, -0.4, 0.3])
    pos = np.broadcast_to(s[:, None, None] * vel, (t, J, 3)) + np.arange(J)[None, :, None] * 0.01
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    omega = 2.5  # rad/s
    quat = np.broadcast_to(
        from_rotation(Rotation.from_rotvec(np.outer(s * omega, axis)), (t,))[:, None], (t, J, 4)
    )
    out = resample(_motion(t, src, pos.copy(), quat.copy()), dst)
    n = int(np.floor((t - 1) / src * dst + 1e-9)) + 1
    assert out.num_frames == n and out.fps == dst
    s2 = np.arange(n) / dst
    np.testing.assert_allclose(out.pos_w[:, 0], s2[:, None] * vel, atol=1e-12)
    expect = from_rotation(Rotation.from_rotvec(np.outer(s2 * omega, axis)), (n,))
    np.testing.assert_allclose(np.abs(np.sum(out.quat_w[:, 3] * expect, -1)), 1.0, atol=1e-12)


def test_slerp_takes_the_short_way_and_stays_unit() -> None:
    q0 = np.array([1.0, 0.0, 0.0, 0.0])
    q1 = from_rotation(Rotation.from_rotvec([0.0, 0.0, 0.4]))
    mid = slerp(q0, -q1, np.array([0.5]))  # -q1 is the same rotation
    np.testing.assert_allclose(Rotation.from_quat(mid[[1, 2, 3, 0]]).as_rotvec(), [0, 0, 0.2], atol=1e-12)
    same = slerp(q1, q1, np.array([0.3]))
    np.testing.assert_allclose(same, q1, atol=1e-12)


def test_floor_and_facing_are_invariant_to_where_the_clip_starts() -> None:
    m = read_clip(WALK)
    yaw, shift = 2.1, np.array([3.0, -1.5, 0.4])
    q = yaw_quat(yaw)
    moved = m.replace(pos_w=quat_rotate(q, m.pos_w) + shift, quat_w=quat_mul(q, m.quat_w))
    assert abs(facing_yaw(moved) - (yaw - 2 * np.pi if yaw > np.pi else yaw)) < 1e-9
    back = align_floor(face_forward(moved))
    np.testing.assert_allclose(back.pos_w, m.pos_w, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(back.quat_w * m.quat_w, -1)), 1.0, atol=1e-9)


def test_hysteresis_state_machine() -> None:
    on = np.array([0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    keep = np.array([0, 1, 1, 1, 0, 1, 1, 1], dtype=bool)
    np.testing.assert_array_equal(hysteresis(on, keep), [0, 1, 1, 1, 0, 0, 1, 1])


def test_contacts_do_not_chatter_near_the_threshold() -> None:
    """A planted foot whose height jitters across the on-threshold stays in contact; a swing lifts it."""
    fps, t = 100.0, 300
    rng = np.random.default_rng(0)
    m = _motion(t, fps)
    cfg = ContactConfig()
    pos = m.pos_w.copy()
    # left foot: planted with 2 mm jitter around height_on, lifted 15 cm between frames 120 and 180
    ankle, toe = m.index("left_ankle"), m.index("left_toe")
    h = cfg.height_on + rng.uniform(-0.002, 0.002, t)
    h[:3] = cfg.height_on - 0.003
    h[120:180] += 0.15 * np.sin(np.linspace(0, np.pi, 60))
    from pipeline.motion.process import sole_offsets

    a_off, t_off = sole_offsets(m)
    pos[:, ankle, 2] = h + a_off
    pos[:, toe, 2] = h + t_off
    pos[:, m.index("right_ankle"), 2] = 1.0  # right foot in the air all along
    pos[:, m.index("right_toe"), 2] = 1.0
    c = detect_contacts(m.replace(pos_w=pos), cfg)
    simple = h < cfg.height_on
    assert np.abs(np.diff(simple.astype(int))).sum() > 20  # a plain threshold chatters
    left = c[:, 0]
    assert left[:120].all() and left[200:].all()  # the first frame starts below the threshold
    assert not left[135:165].any()
    assert np.abs(np.diff(left.astype(int))).sum() == 2  # one lift-off, one touch-down
    assert not c[:, 1].any()


def test_contacts_need_a_slow_foot() -> None:
    fps, t = 100.0, 100
    m = _motion(t, fps)
    pos = m.pos_w.copy()
    for name in ("left_ankle", "left_toe"):
        pos[:, m.index(name), 0] += np.arange(t) / fps * 1.5  # sliding at 1.5 m/s on the floor
    c = detect_contacts(align_floor(m.replace(pos_w=pos)))
    assert not c[:, 0].any() and c[:, 1].all()


def test_rest_correction_maps_t_pose_arms_down() -> None:
    rest = np.array(read_clip(WALK).source["rest_pos"])
    t_pose = rest.copy()
    for side, sign in (("left", 1.0), ("right", -1.0)):
        sh = CANONICAL_JOINTS.index(f"{side}_shoulder")
        for k, name in enumerate(("elbow", "wrist"), start=1):
            t_pose[CANONICAL_JOINTS.index(f"{side}_{name}")] = t_pose[sh] + [0.0, sign * 0.27 * k, 0.0]
    corr = rest_correction(t_pose, CANONICAL_JOINTS)
    i = CANONICAL_JOINTS.index("left_shoulder")
    # the correction takes the canonical (down) arm onto the T-pose arm (+y for the left side)
    np.testing.assert_allclose(quat_rotate(corr[i], [0.0, 0.0, -1.0]), [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(
        corr[CANONICAL_JOINTS.index("left_wrist")], corr[CANONICAL_JOINTS.index("left_elbow")]
    )
    np.testing.assert_allclose(np.abs(rest_correction(rest, CANONICAL_JOINTS)[:, 0]), 1.0, atol=1e-3)


def test_processed_npz_round_trip(tmp_path: Path) -> None:
    m = read_clip(WALK, fps=50)
    f = tmp_path / "walk.npz"
    m.save(f)
    back = read_clip(f)
    np.testing.assert_array_equal(back.pos_w, m.pos_w)
    np.testing.assert_array_equal(back.contacts, m.contacts)
    assert back.source == m.source and back.fps == 50.0
    assert read_clip(f, fps=25).num_frames == (m.num_frames - 1) // 2 + 1


def test_subject_height_override_scales_uniformly() -> None:
    m = read_clip(WALK)
    big = read_clip(WALK, subject_height=m.subject_height * 1.1)
    assert big.subject_height == pytest.approx(m.subject_height * 1.1)
    np.testing.assert_allclose(big.pos_w[:, 0, 2], m.pos_w[:, 0, 2] * 1.1, atol=2e-3)


def test_contact_thresholds_come_from_params_and_bad_ones_are_refused() -> None:
    from pipeline.errors import InputError

    assert ContactConfig.from_params(None) == ContactConfig()
    high = ContactConfig.from_params({"height_on": 0.5, "height_off": 0.6})
    assert high.height_on == 0.5 and high.speed_on == ContactConfig().speed_on
    m = _motion(50, 50.0)
    pos = m.pos_w.copy()
    for side in ("left", "right"):  # feet held still 20 cm up: in contact only with the raised thresholds
        for part in ("ankle", "toe"):
            pos[:, m.index(f"{side}_{part}"), 2] = 0.2
    still = m.replace(pos_w=pos)
    assert not detect_contacts(still, ContactConfig()).any()
    assert detect_contacts(still, high).all()
    for bad, message in (
        ({"height": 0.1}, "unknown keys"),
        ({"height_on": 0.1, "height_off": 0.05}, "below its *_on"),
        ({"speed_on": -1.0}, "positive"),
        ({"speed_on": "fast"}, "extract.contacts"),
    ):
        with pytest.raises(InputError, match=re.escape(message)):
            ContactConfig.from_params(bad)
