"""DeepMimic reader: layout and quaternion order checked against pybullet's own kinematics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pybullet
import pybullet_data
import pytest
from pybullet_utils import bullet_client

from pipeline.errors import InputError
from pipeline.geometry import quat_to_matrix
from pipeline.motion import deepmimic as dm
from pipeline.motion import read_clip
from pipeline.motion.process import facing_yaw

MOTIONS = Path(pybullet_data.getDataPath()) / "data" / "motions"


def _pose_interpolator() -> object:
    """pybullet's HumanoidPoseInterpolator, loaded from its file (the pybullet_envs package imports gym)."""
    import importlib.util

    spec = importlib.util.find_spec("pybullet_envs")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "deep_mimic" / "env" / "humanoid_pose_interpolator.py"
    mod_spec = importlib.util.spec_from_file_location("_pb_humanoid_pose_interpolator", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.HumanoidPoseInterpolator()


# pybullet's DeepMimic env: joint index of each motion entry (humanoid_stable_pd.py constants)
PB_JOINT_INDEX = {
    "chest": 1,
    "neck": 2,
    "right_hip": 3,
    "right_knee": 4,
    "right_ankle": 5,
    "right_shoulder": 6,
    "right_elbow": 7,
    "left_hip": 9,
    "left_knee": 10,
    "left_ankle": 11,
    "left_shoulder": 12,
    "left_elbow": 13,
}


def _pybullet_link_frames(frames: np.ndarray) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Pose each frame the way pybullet's DeepMimic env does; return {link: (pos, xyzw)} per frame."""
    client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
    try:
        client.setAdditionalSearchPath(pybullet_data.getDataPath())
        body = client.loadURDF(
            "humanoid/humanoid.urdf", [0, 0.85, 0], globalScaling=0.25, useFixedBase=True,
            flags=client.URDF_MAINTAIN_LINK_ORDER,
        )  # fmt: skip
        interp: Any = _pose_interpolator()
        out = []
        for k in range(frames.shape[0] - 1):
            interp.Slerp(0.0, list(frames[k]), list(frames[k + 1]), client)
            client.resetBasePositionAndOrientation(body, interp._basePos, interp._baseOrn)
            for name, idx in PB_JOINT_INDEX.items():
                client.resetJointStateMultiDof(body, idx, getattr(interp, f"_{_camel(name)}Rot"))
            links = {}
            for j in range(client.getNumJoints(body)):
                link = client.getJointInfo(body, j)[12].decode()
                st = client.getLinkState(body, j, computeForwardKinematics=True)
                links[link] = (np.array(st[4]), np.array(st[5]))
            out.append(links)
        return out
    finally:
        client.disconnect()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


@pytest.mark.parametrize("clip", ["walk", "run", "spinkick"])
def test_forward_kinematics_matches_pybullet(clip: str) -> None:
    """Our reading of the file (wxyz, layout, URDF offsets) reproduces pybullet's link frames."""
    frames, _ = dm.load_frames(MOTIONS / f"humanoid3d_{clip}.txt")
    frames = frames[::4]
    frames[:-1, 0] = 0.1
    ref = _pybullet_link_frames(frames)
    pos, rot = dm.forward_kinematics(frames, dm.load_skeleton())
    for k, links in enumerate(ref):
        assert len(links) == 15
        for link, (p, q_xyzw) in links.items():
            np.testing.assert_allclose(pos[link][k], p, atol=1e-5, err_msg=f"{clip} frame {k} {link}")
            r_pb = quat_to_matrix(np.array(q_xyzw)[[3, 0, 1, 2]])
            np.testing.assert_allclose(rot[link][k], r_pb, atol=1e-5, err_msg=f"{clip} frame {k} {link}")


def test_the_other_quaternion_order_is_implausible() -> None:
    """Read as xyzw, the walking subject hangs upside down; read as wxyz, the neck is above the root in every
    frame and the ankles stay at their foot-box height above the file's floor (y = 0)."""
    frames, _ = dm.load_frames(MOTIONS / "humanoid3d_walk.txt")
    skel = dm.load_skeleton()
    box_c, box_size = skel.foot_box
    ankle_height = -(box_c[1] - 0.5 * box_size[1])
    pos, _ = dm.forward_kinematics(frames, skel, quat_order="wxyz")
    assert (pos["neck"][:, 1] > pos["root"][:, 1] + 0.2).all()
    low = np.minimum(pos["left_ankle"][:, 1], pos["right_ankle"][:, 1])
    assert np.abs(low - ankle_height).max() < 0.03
    pos, _ = dm.forward_kinematics(frames, skel, quat_order="xyzw")
    assert (pos["neck"][:, 1] < pos["root"][:, 1]).all()


def test_walk_reads_canonical() -> None:
    m = read_clip(MOTIONS / "humanoid3d_walk.txt")
    assert m.fps == 30.0 and m.num_frames == 39
    assert m.source["cyclic"] is True and m.source["quat_order"] == "wxyz"
    assert 1.6 < m.subject_height < 1.8
    p = m.pos_w
    assert abs(facing_yaw(m)) < 1e-9
    assert (p[:, m.index("head"), 2] > p[:, m.index("pelvis"), 2] + 0.3).all()
    # toes ahead of the ankles when standing (frame 0), left side at +y
    for side in ("left", "right"):
        assert p[0, m.index(f"{side}_toe"), 0] > p[0, m.index(f"{side}_ankle"), 0] + 0.05
    assert p[0, m.index("left_hip"), 1] > p[0, m.index("right_hip"), 1]
    # walks forward about 1 m/s, both feet alternate contacts
    speed = (p[-1, 0, 0] - p[0, 0, 0]) / ((m.num_frames - 1) / m.fps)
    assert 0.7 < speed < 1.5
    assert 0.3 < m.contacts.mean() < 0.8
    assert m.contacts.all(axis=1).any() and (~m.contacts[:, 0] & m.contacts[:, 1]).any()


def test_loop_flag_and_uneven_durations() -> None:
    assert read_clip(MOTIONS / "humanoid3d_kick.txt").source["cyclic"] is False
    roll = read_clip(MOTIONS / "humanoid3d_roll.txt")  # one frame lasts 2/60 s: resampled to 60 fps
    frames, _ = dm.load_frames(MOTIONS / "humanoid3d_roll.txt")
    assert roll.fps == 60.0
    dur = frames[:-1, 0]
    assert roll.num_frames == int(np.floor((dur / np.median(dur)).sum() + 1e-6)) + 1 == 121


def _write(tmp_path: Path, frames: object, loop: str = "wrap") -> Path:
    f = tmp_path / "clip.txt"
    f.write_text(json.dumps({"Loop": loop, "Frames": frames}))
    return f


def test_bad_deepmimic_files(tmp_path: Path) -> None:
    good, _ = dm.load_frames(MOTIONS / "humanoid3d_walk.txt")
    rows = good[:5].tolist()
    with pytest.raises(InputError, match="frame 2 has 43 values"):
        read_clip(_write(tmp_path, [*rows[:2], rows[2][:-1], *rows[3:]]))
    bad = [list(r) for r in rows]
    bad[3][9] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        read_clip(_write(tmp_path, bad))
    with pytest.raises(InputError, match="zero frames"):
        read_clip(_write(tmp_path, []))
    with pytest.raises(InputError, match="Loop"):
        read_clip(_write(tmp_path, rows, loop="forever"))
    f = tmp_path / "trunc.txt"
    f.write_text((MOTIONS / "humanoid3d_walk.txt").read_text()[:5000])
    with pytest.raises(InputError, match="invalid JSON") as e:
        read_clip(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)
