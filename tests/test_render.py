"""`mimic render` writes an mp4 of the robot with the scaled human keypoints beside it, headless."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.motion.human import CANONICAL_JOINTS
from pipeline.robot import load_robot
from pipeline.robot.motion import RobotMotion
from pipeline.viz.render import render_frames


def _motion(frames: int = 15, with_keypoints: bool = True) -> RobotMotion:
    g1 = load_robot("g1")
    qpos = np.zeros((frames, 7 + g1.num_joints))
    qpos[:, 2] = 0.76
    qpos[:, 3] = 1.0
    qpos[:, 7:] = g1.default_pos
    qpos[:, 7 + g1.joint_names.index("left_shoulder_pitch_joint")] = np.linspace(0.0, -2.0, frames)
    kp = np.tile(np.linspace([0, 0, 0.1], [0, 0, 1.6], len(CANONICAL_JOINTS)), (frames, 1, 1))
    return RobotMotion.from_qpos(
        "g1",
        qpos,
        30.0,
        keypoint_names=CANONICAL_JOINTS if with_keypoints else (),
        keypoint_pos_w=kp if with_keypoints else None,
    )


def test_frames_show_robot_and_skeleton_and_move():
    motion = _motion()
    frames = list(render_frames(motion, width=160, height=120, fps=30.0))
    assert len(frames) == motion.num_frames
    bare = next(render_frames(_motion(with_keypoints=False), width=160, height=120, fps=30.0))
    first, last = frames[0].astype(int), frames[-1].astype(int)
    assert first.std() > 10  # not a blank image
    assert np.abs(first - bare).sum() > 0  # the skeleton is drawn
    assert np.abs(first - last).mean() > 0.05  # the arm moved


def test_cli_render_writes_decodable_mp4(tmp_path):
    src = tmp_path / "m.npz"
    _motion(frames=10).save(src)
    out = tmp_path / "m.mp4"
    assert main(["render", str(src), "-o", str(out), "--width", "160", "--height", "120"]) == 0
    frames = [f for f in imageio.get_reader(out)]
    assert len(frames) == 10 and frames[0].shape == (120, 160, 3)


def test_cli_render_bad_input_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    out = tmp_path / "o.mp4"
    assert main(["render", str(bad), "-o", str(out)]) == 2
    assert "bad.npz" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".avi"])
def test_cli_render_refuses_other_containers(tmp_path, suffix):
    src = tmp_path / "m.npz"
    _motion(frames=3).save(src)
    assert main(["render", str(src), "-o", str(tmp_path / f"m{suffix}")]) == 2
