"""BVH reader: real CMU clips, axis conversion, channel orders, units, joint maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.errors import InputError
from pipeline.geometry import quat_rotate
from pipeline.motion import read_clip
from pipeline.motion.bvh import read_bvh
from pipeline.motion.human import CANONICAL_JOINTS, HumanMotion
from pipeline.motion.process import facing_yaw, sole_heights

CMU = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu"
CMU_01 = CMU / "131_01.bvh"
needs_cmu = pytest.mark.skipif(not CMU_01.is_file(), reason="CMU clips not available")


@pytest.fixture(scope="module")
def cmu01() -> HumanMotion:
    return read_clip(CMU_01)


@needs_cmu
def test_cmu_clip_reads_canonical(cmu01: HumanMotion) -> None:
    m = cmu01
    assert m.num_frames == 994
    assert m.fps == 120.0
    assert m.joint_names == CANONICAL_JOINTS
    assert m.source["skeleton"] == "cmu" and m.source["unit"] == "cmu"
    assert m.source["joints"]["left_hip"] == "LeftHip"  # the femur head, not LHipJoint
    assert 1.5 < m.subject_height < 1.9
    # upright: head well above the pelvis, pelvis near hip height, toes near the floor
    p0 = m.pos_w[0]
    assert p0[m.index("head"), 2] - p0[m.index("pelvis"), 2] > 0.3
    assert 0.75 < p0[m.index("pelvis"), 2] < 1.1
    # left side is +y when facing +x
    assert p0[m.index("left_hip"), 1] > p0[m.index("right_hip"), 1]
    assert p0[m.index("left_shoulder"), 1] > p0[m.index("right_shoulder"), 1]
    q_norm = np.linalg.norm(m.quat_w, axis=-1)
    np.testing.assert_allclose(q_norm, 1.0, atol=1e-9)


@needs_cmu
def test_cmu_feet_on_floor_and_facing(cmu01: HumanMotion) -> None:
    m = cmu01
    low = sole_heights(m).min(axis=(1, 2))  # lowest sole point per frame
    assert abs(np.median(low)) < 0.015  # walking: a foot is on the floor nearly all the time
    assert np.percentile(low, 5) > -0.03 and low.min() > -0.05  # brief dips (toe roll), none deep
    feet = sole_heights(m).min(axis=2)
    assert abs(np.median(feet[m.contacts])) < 0.01  # feet in contact stand on z = 0
    assert abs(facing_yaw(m, 0)) < 1e-9
    np.testing.assert_allclose(m.pos_w[0, 0, :2], 0.0, atol=1e-12)
    # the subject walks forward: mostly +x displacement over the clip
    d = m.pos_w[-1, 0, :2] - m.pos_w[0, 0, :2]
    assert d[0] > 0.5 and d[0] > abs(d[1])
    # both feet have contacts, and not all the time
    assert 0.1 < m.contacts[:, 0].mean() < 0.95 and 0.1 < m.contacts[:, 1].mean() < 0.95


def _two_joint_bvh(
    order: str, values: dict[str, float], root_rot: str = "Zrotation Xrotation Yrotation"
) -> str:
    """A tiny skeleton with CMU-like names (legs, spine, arms); ``order`` is the knee's rotation channel order."""
    knee_vals = " ".join(str(values[c[0]]) for c in order.split())
    root_order = root_rot.split()
    root_vals = " ".join(str({"Z": 10.0, "X": -20.0, "Y": 35.0}[c[0]]) for c in root_order)
    joints = []
    for side, x in (("Left", 1.0), ("Right", -1.0)):
        joints.append(
            f"""JOINT {side}UpLeg {{ OFFSET {x * 10} -5 0 CHANNELS 3 Zrotation Yrotation Xrotation
  JOINT {side}Leg {{ OFFSET 0 -45 0 CHANNELS 3 {order}
    JOINT {side}Foot {{ OFFSET 0 -43 0 CHANNELS 3 Zrotation Yrotation Xrotation
      JOINT {side}ToeBase {{ OFFSET 0 -5 12 CHANNELS 3 Zrotation Yrotation Xrotation
        End Site {{ OFFSET 0 0 5 }} }} }} }} }}"""
        )
    spine = """JOINT Spine { OFFSET 0 10 0 CHANNELS 3 Zrotation Yrotation Xrotation
  JOINT Spine1 { OFFSET 0 20 0 CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT Neck { OFFSET 0 20 0 CHANNELS 3 Zrotation Yrotation Xrotation
      JOINT Head { OFFSET 0 10 0 CHANNELS 3 Zrotation Yrotation Xrotation End Site { OFFSET 0 20 0 } } }"""
    for side, x in (("Left", 1.0), ("Right", -1.0)):
        spine += f"""
    JOINT {side}Shoulder {{ OFFSET {x * 5} 15 0 CHANNELS 3 Zrotation Yrotation Xrotation
      JOINT {side}Arm {{ OFFSET {x * 12} 0 0 CHANNELS 3 Zrotation Yrotation Xrotation
        JOINT {side}ForeArm {{ OFFSET 0 -28 0 CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT {side}Hand {{ OFFSET 0 -25 0 CHANNELS 3 Zrotation Yrotation Xrotation
            End Site {{ OFFSET 0 -8 0 }} }} }} }} }}"""
    spine += " } }"
    n_rest = 18  # joints after the left knee (3 channels each)
    frame = f"0 95 0 {root_vals} 0 0 0 {knee_vals} " + " ".join(["0 0 0"] * n_rest)
    frame2 = f"5 95 1 {root_vals} 0 0 0 {knee_vals} " + " ".join(["0 0 0"] * n_rest)
    return (
        "HIERARCHY\nROOT Hips { OFFSET 0 0 0 CHANNELS 6 Xposition Yposition Zposition "
        + root_rot
        + "\n"
        + "\n".join(joints)
        + "\n"
        + spine
        + f"\n}}\nMOTION\nFrames: 2\nFrame Time: 0.01\n{frame}\n{frame2}\n"
    )


def test_channel_order_is_honoured(tmp_path: Path) -> None:
    """The same rotation written in two channel orders (angles converted) gives the same positions."""
    r = Rotation.from_euler("ZXY", [30.0, 40.0, -25.0], degrees=True)
    zxy = dict(zip("ZXY", r.as_euler("ZXY", degrees=True), strict=True))
    yxz = dict(zip("YXZ", r.as_euler("YXZ", degrees=True), strict=True))
    a = tmp_path / "a.bvh"
    b = tmp_path / "b.bvh"
    a.write_text(_two_joint_bvh("Zrotation Xrotation Yrotation", zxy))
    b.write_text(_two_joint_bvh("Yrotation Xrotation Zrotation", yxz))
    ma, mb = read_bvh(a, unit="cm"), read_bvh(b, unit="cm")
    np.testing.assert_allclose(ma.pos_w, mb.pos_w, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(ma.quat_w * mb.quat_w, -1)), 1.0, atol=1e-9)
    # and a wrong interpretation (same numbers, other order) would differ
    c = tmp_path / "c.bvh"
    c.write_text(_two_joint_bvh("Yrotation Xrotation Zrotation", zxy))
    assert np.abs(read_bvh(c, unit="cm").pos_w - ma.pos_w).max() > 0.05


def test_y_up_to_z_up_and_rest_quaternions(tmp_path: Path) -> None:
    """Rest pose: identity rotations, head up (+z), left at +y, facing +x; units detected as cm."""
    f = tmp_path / "rest.bvh"
    zero = {"Z": 0.0, "X": 0.0, "Y": 0.0}
    text = _two_joint_bvh("Zrotation Xrotation Yrotation", zero).replace("10.0 -20.0 35.0", "0.0 0.0 0.0")
    f.write_text(text)
    m = read_bvh(f)
    assert m.source["unit"] == "cm" and m.source["skeleton"] == "motionbuilder"
    np.testing.assert_allclose(np.abs(m.quat_w[0, :, 0]), 1.0, atol=1e-12)
    p = m.pos_w[0]
    assert p[m.index("head"), 2] > p[m.index("pelvis"), 2] + 0.4  # BVH +y became +z
    assert p[m.index("left_hip"), 1] == pytest.approx(0.10)  # BVH +x (subject's left) became +y
    assert p[m.index("left_toe"), 0] == pytest.approx(0.12)  # BVH +z (toes point forward) became +x
    np.testing.assert_allclose(p[m.index("pelvis")], [0.0, 0.0, 0.95])
    # second frame moves 5 cm along BVH x (the subject's left), i.e. +y in the world
    np.testing.assert_allclose(m.pos_w[1, 0] - m.pos_w[0, 0], [0.01, 0.05, 0.0], atol=1e-12)


def test_rotation_follows_world_axes(tmp_path: Path) -> None:
    """A root yaw about BVH +y (up) is a yaw about world +z: the quaternion rotates the rest forward."""
    f = tmp_path / "yaw.bvh"
    zero = {"Z": 0.0, "X": 0.0, "Y": 0.0}
    f.write_text(
        _two_joint_bvh("Zrotation Xrotation Yrotation", zero).replace("10.0 -20.0 35.0", "0.0 0.0 90.0")
    )
    m = read_bvh(f, unit="cm")
    q = m.quat_w[0, 0]
    np.testing.assert_allclose(quat_rotate(q, [1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-12)


def test_unit_override_and_wrong_units(tmp_path: Path) -> None:
    f = tmp_path / "u.bvh"
    f.write_text(_two_joint_bvh("Zrotation Xrotation Yrotation", {"Z": 0.0, "X": 0.0, "Y": 0.0}))
    assert read_bvh(f, unit=0.01).pos_w[0, 0, 2] == pytest.approx(0.95, abs=0.05)
    with pytest.raises(InputError, match="not a human height"):
        read_bvh(f, unit="m")
    with pytest.raises(InputError, match="unknown unit"):
        read_bvh(f, unit="furlong")


def test_user_joint_map(tmp_path: Path) -> None:
    text = _two_joint_bvh("Zrotation Xrotation Yrotation", {"Z": 0.0, "X": 0.0, "Y": 0.0})
    renamed = text
    for old, new in (("UpLeg", "Thigh"), ("ToeBase", "Toes"), ("ForeArm", "Lower"), ("Spine1", "Chest")):
        renamed = renamed.replace(old, new)
    f = tmp_path / "odd.bvh"
    f.write_text(renamed)
    with pytest.raises(InputError, match="unknown skeleton"):
        read_clip(f)
    ref = tmp_path / "ref.bvh"
    ref.write_text(text)
    mapping = {
        "pelvis": "Hips",
        "torso": "Chest",
        "head": "Head",
        **{f"{s}_{k}": f"{s.title()}{v}" for s in ("left", "right") for k, v in (
            ("shoulder", "Arm"), ("elbow", "Lower"), ("wrist", "Hand"), ("hip", "Thigh"),
            ("knee", "Leg"), ("ankle", "Foot"), ("toe", "Toes"))},
    }  # fmt: skip
    mf = tmp_path / "map.yaml"
    import yaml

    mf.write_text(yaml.safe_dump(mapping))
    m = read_clip(f, joint_map=mf)
    np.testing.assert_allclose(m.pos_w, read_clip(ref).pos_w, atol=1e-12)
    assert m.source["skeleton"] == "user"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**mapping, "tail": "Tail"}))
    with pytest.raises(InputError, match="unknown keypoints"):
        read_clip(f, joint_map=bad)
    del mapping["head"]
    bad.write_text(yaml.safe_dump(mapping))
    with pytest.raises(InputError, match="lacks keypoints"):
        read_clip(f, joint_map=bad)


def test_mixamo_names_with_prefix(tmp_path: Path) -> None:
    text = _two_joint_bvh("Zrotation Xrotation Yrotation", {"Z": 0.0, "X": 0.0, "Y": 0.0})
    text = text.replace(
        "Spine1", "Spine1 { OFFSET 0 0 0 CHANNELS 3 Zrotation Yrotation Xrotation JOINT Spine2", 1
    )
    text = text.replace("\n}\nMOTION", "\n}}\nMOTION")
    text = text.replace("0 95 0 ", "0 95 0 0 0 0 ").replace("5 95 1 ", "5 95 1 0 0 0 ")
    import re

    text = re.sub(r"(JOINT|ROOT) (\w+)", r"\1 mixamorig:\2", text)
    f = tmp_path / "mixamo.bvh"
    f.write_text(text)
    m = read_bvh(f)
    assert m.source["skeleton"] == "mixamo"
    assert m.source["joints"]["torso"] == "mixamorig:Spine2"


def test_t_pose_skeleton_gives_the_same_rotations(tmp_path: Path) -> None:
    """Rotations are expressed against one canonical rest pose (arms down), whatever the skeleton's rest:
    a T-pose skeleton with its arms rotated down reads exactly like the arms-down skeleton at rest."""
    zero = {"Z": 0.0, "X": 0.0, "Y": 0.0}
    down = _two_joint_bvh("Zrotation Xrotation Yrotation", zero)
    t_pose = down
    for side, x in (("Left", 1), ("Right", -1)):
        for joint, length in (("ForeArm", 28), ("Hand", 25)):
            t_pose = t_pose.replace(
                f"JOINT {side}{joint} {{ OFFSET 0 -{length} 0",
                f"JOINT {side}{joint} {{ OFFSET {x * length} 0 0",
            )
        t_pose = t_pose.replace(
            f"JOINT {side}Hand {{ OFFSET {x * 25} 0 0 CHANNELS 3 Zrotation Yrotation Xrotation\n            End Site {{ OFFSET 0 -8 0 }}",
            f"JOINT {side}Hand {{ OFFSET {x * 25} 0 0 CHANNELS 3 Zrotation Yrotation Xrotation\n            End Site {{ OFFSET {x * 8} 0 0 }}",
        )
    assert t_pose.count("OFFSET 28 0 0") == 1 and t_pose.count("OFFSET -25 0 0") == 1
    head, motion = t_pose.split("MOTION")
    rows = [r.split() for r in motion.strip().splitlines()[2:]]
    for r in rows:
        r[45], r[57] = "-90", "90"  # LeftArm / RightArm Zrotation: arms down from the T-pose
    t_pose = head + "MOTION\nFrames: 2\nFrame Time: 0.01\n" + "\n".join(" ".join(r) for r in rows) + "\n"
    (tmp_path / "down.bvh").write_text(down)
    (tmp_path / "t.bvh").write_text(t_pose)
    a, b = read_bvh(tmp_path / "down.bvh", unit="cm"), read_bvh(tmp_path / "t.bvh", unit="cm")
    np.testing.assert_allclose(a.pos_w, b.pos_w, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(a.quat_w * b.quat_w, axis=-1)), 1.0, atol=1e-9)
    rest = np.array(b.source["rest_pos"])
    assert rest[b.index("left_wrist"), 1] > rest[b.index("left_elbow"), 1] > rest[b.index("left_shoulder"), 1]


def test_z_up_file_reads_like_the_y_up_one(tmp_path: Path) -> None:
    """The same skeleton and motion written Z-up (rotated +90 deg about x) gives the same world data."""
    import re

    rot = Rotation.from_euler("x", 90.0, degrees=True)
    y_up = _two_joint_bvh("Zrotation Xrotation Yrotation", {"Z": 20.0, "X": -30.0, "Y": 10.0})

    def offset(m: re.Match[str]) -> str:
        v = rot.apply([float(m.group(i)) for i in (1, 2, 3)])
        return "OFFSET " + " ".join(f"{c:.9f}" for c in v)

    z_up = re.sub(r"OFFSET (\S+) (\S+) (\S+)", offset, y_up)
    head, motion = z_up.split("MOTION")
    rows = [r.split() for r in motion.strip().splitlines()[2:]]
    for r in rows:  # root position and root rotation: R' = Rx(90) R Rx(90)^T, written as Z X Y angles
        r[0:3] = [f"{c:.9f}" for c in rot.apply([float(c) for c in r[0:3]])]
        r_root = Rotation.from_euler("ZXY", [float(c) for c in r[3:6]], degrees=True)
        r[3:6] = [f"{c:.9f}" for c in (rot * r_root * rot.inv()).as_euler("ZXY", degrees=True)]
    # the other joints' local rotations are about axes of the file frame too (knees 9, 21: Z X Y order)
    for r in rows:
        for j in range(6, len(r), 3):
            local = Rotation.from_euler(
                "ZXY" if j in (9, 21) else "ZYX", [float(c) for c in r[j : j + 3]], degrees=True
            )
            r[j : j + 3] = [
                f"{c:.9f}"
                for c in (rot * local * rot.inv()).as_euler("ZXY" if j in (9, 21) else "ZYX", degrees=True)
            ]
    z_up = head + "MOTION\nFrames: 2\nFrame Time: 0.01\n" + "\n".join(" ".join(r) for r in rows) + "\n"
    (tmp_path / "y.bvh").write_text(y_up)
    (tmp_path / "z.bvh").write_text(z_up)
    a, b = read_bvh(tmp_path / "y.bvh", unit="cm"), read_bvh(tmp_path / "z.bvh", unit="cm")
    assert a.source["up_axis"] == "+y" and b.source["up_axis"] == "+z"
    np.testing.assert_allclose(a.pos_w, b.pos_w, atol=1e-7)
    np.testing.assert_allclose(np.abs(np.sum(a.quat_w * b.quat_w, axis=-1)), 1.0, atol=1e-9)


def test_wrapped_frame_lines_and_bom(tmp_path: Path) -> None:
    text = _two_joint_bvh("Zrotation Xrotation Yrotation", {"Z": 5.0, "X": 10.0, "Y": 15.0})
    head, motion = text.split("MOTION")
    lines = motion.strip().splitlines()
    wrapped = [*lines[:2]]
    for row in lines[2:]:
        vals = row.split()
        wrapped += [" ".join(vals[:20]), " ".join(vals[20:])]
    (tmp_path / "a.bvh").write_text(text)
    (tmp_path / "b.bvh").write_text(
        "\ufeff" + head + "MOTION\n" + "\r\n".join(wrapped) + "\r\n", encoding="utf-8"
    )
    np.testing.assert_array_equal(read_bvh(tmp_path / "a.bvh").pos_w, read_bvh(tmp_path / "b.bvh").pos_w)
