"""Retargeting end to end: config, scaling, the robot's own motion, real clips against the issue's bars, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest

from pipeline.errors import InputError
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, HumanMotion
from pipeline.retarget import QUALITY_KEYS, RetargetConfig, retarget
from pipeline.retarget.kinematics import Frame, robot_kinematics
from pipeline.retarget.scaling import segment_lengths

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CMU = DATA / "cmu" / "131_01.bvh"


def deepmimic(name: str) -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{name}.txt"


def assert_bars(q: dict) -> None:
    """The quality bar of issue 2."""
    assert q["joint_limit_violations"] == 0
    assert q["self_collisions"] == 0
    assert q["floor_penetration_max_mm"] <= 5.0
    assert q["foot_skate_mean_mm_s"] <= 20.0
    assert q["keypoint_err_mean_mm"] <= 50.0


def test_config_rejects_unknown_and_mistyped_keys():
    assert RetargetConfig.from_dict({"fps": 30, "iterations": 3}).fps == 30.0
    with pytest.raises(InputError, match="unknown keys"):
        RetargetConfig.from_dict({"fpss": 30})
    with pytest.raises(InputError, match="integer"):
        RetargetConfig.from_dict({"iterations": 1.5})
    with pytest.raises(InputError, match="solver"):
        RetargetConfig.from_dict({"solver": "nope"})
    with pytest.raises(InputError):
        RetargetConfig.from_dict({"collision_margin": -1.0})


def robot_fk_motion(seconds: float = 2.0, fps: float = 50.0) -> HumanMotion:
    """A HumanMotion made of the G1's own keypoints: arms and waist swing, legs bend, the root moves."""
    kin = robot_kinematics("g1")
    fr = Frame(kin)
    t = np.arange(int(seconds * fps)) / fps
    order = [kin.keypoint_names.index(n) for n in CANONICAL_JOINTS]
    pos = np.zeros((len(t), len(order), 3))
    quat = np.zeros((len(t), len(order), 4))
    names = list(kin.model.names)
    for i, ti in enumerate(t):
        q = kin.q_default.copy()
        q[0] = 0.3 * ti
        q[2] = 0.78
        q[3:7] = pin.Quaternion(pin.exp3(np.array([0.0, 0.0, 0.3 * np.sin(ti)]))).coeffs()
        for name, amp, freq in (
            ("left_shoulder_pitch_joint", 0.6, 1.0),
            ("right_shoulder_pitch_joint", -0.6, 1.0),
            ("left_elbow_joint", 0.4, 1.5),
            ("right_shoulder_roll_joint", -0.3, 0.7),
            ("waist_yaw_joint", 0.3, 0.5),
            ("left_hip_pitch_joint", -0.3, 1.0),
            ("left_knee_joint", 0.4, 1.0),
        ):
            j = kin.model.joints[names.index(name)].idx_q
            q[j] += amp * np.sin(2 * np.pi * freq * ti)
        fr.update(q)
        x = fr.points(kin.kp_slot, kin.kp_local)
        rot = fr.rot[kin.kp_slot] @ kin.kp_rot_local @ np.swapaxes(kin.kp_rot_rest_w, 1, 2)
        pos[i] = x[order]
        quat[i] = [pin.Quaternion(r).coeffs()[[3, 0, 1, 2]] for r in rot[order]]
    return HumanMotion(
        fps=fps,
        joint_names=CANONICAL_JOINTS,
        parents=np.array(CANONICAL_PARENTS),
        pos_w=pos,
        quat_w=quat,
        contacts=np.zeros((len(t), 2), bool),
        subject_height=1.3,
        source={"format": "synthetic", "sha256": "0" * 64},
    )


def test_robot_own_motion_retargets_to_near_zero_error():
    human = robot_fk_motion()
    motion, q = retarget(human, "g1", RetargetConfig())
    assert set(q) == set(QUALITY_KEYS)
    assert q["keypoint_err_mean_mm"] < 5.0, q
    assert q["keypoint_err_max_mm"] < 30.0, q
    assert q["joint_limit_violations"] == 0 and q["self_collisions"] == 0
    assert motion.num_frames == human.num_frames and motion.fps == 50.0


def test_scaled_chain_has_robot_lengths():
    """Chain segments of the scaled human have the robot's lengths (the per-segment ratios at work)."""
    from pipeline.motion import read_clip
    from pipeline.retarget.core import _contacts, targets

    kin = robot_kinematics("g1")
    human = read_clip(deepmimic("walk"))
    tg = targets(human, kin, RetargetConfig(smoothing_sigma=0.0), _contacts(human))
    canon = [kin.keypoint_names.index(n) for n in CANONICAL_JOINTS]
    got = segment_lengths(tg["pos_w"][:, [kin.keypoint_names.index(n) for n in CANONICAL_JOINTS]])
    want = segment_lengths(kin.rest_pos_w[canon])
    for name in ("left_knee", "left_ankle", "right_elbow", "right_wrist", "torso"):
        j = CANONICAL_JOINTS.index(name)
        assert got[j] == pytest.approx(want[j], rel=1e-6)


@pytest.mark.skipif(not CMU.is_file(), reason="CMU clips not present")
def test_cmu_clip_meets_the_bar():
    from pipeline.motion import read_clip

    _, q = retarget(read_clip(CMU), "g1", RetargetConfig())
    assert_bars(q)


def test_deepmimic_walk_meets_the_bar():
    from pipeline.motion import read_clip

    motion, q = retarget(read_clip(deepmimic("walk")), "g1", RetargetConfig())
    assert_bars(q)
    assert motion.keypoint_pos_w.shape == (motion.num_frames, 17, 3)
    assert motion.source["cyclic"] is True  # DeepMimic's Loop flag reaches the training reference


@pytest.mark.slow
@pytest.mark.parametrize("name", ["run", "jump", "dance_a", "spinkick", "kick"])
def test_default_clips_meet_the_bar(name):
    from pipeline.motion import read_clip

    _, q = retarget(read_clip(deepmimic(name)), "g1", RetargetConfig())
    assert_bars(q)


def test_retarget_file_writes_both_files_or_nothing(tmp_path):
    from pipeline.cli import main

    out = tmp_path / "walk.npz"
    assert main(["retarget", str(deepmimic("walk")), "--robot", "g1", "-o", str(out)]) == 0
    qual = json.loads((tmp_path / "walk.quality.json").read_text())
    assert set(qual) == set(QUALITY_KEYS)
    from pipeline.robot.motion import RobotMotion

    motion = RobotMotion.load(out, robot="g1")
    assert motion.source["method"] and motion.source["human_sha256"]
    before = out.read_bytes()
    # Bad input: exit 2, nothing new, the existing output untouched.
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n")
    assert main(["retarget", str(bad), "-o", str(out)]) == 2
    assert main(["retarget", str(deepmimic("walk")), "--robot", "nope", "-o", str(out)]) == 2
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bvh", "walk.npz", "walk.quality.json"]


def test_retarget_is_deterministic():
    from pipeline.motion import read_clip

    human = read_clip(deepmimic("run"))
    a, _ = retarget(human, "g1", RetargetConfig())
    b, _ = retarget(human, "g1", RetargetConfig())
    np.testing.assert_array_equal(a.qpos, b.qpos)
