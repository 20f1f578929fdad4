"""Viewer internals without a browser: meshes, per-frame overlays, the clip catalog, CLI errors."""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.geometry import quat_rotate
from pipeline.robot.model import joint_limits, mujoco_model
from pipeline.robot.motion import RobotMotion
from pipeline.viz.catalog import list_clips, quality_status, resolve
from pipeline.viz.meshes import body_meshes, simplify
from pipeline.viz.overlays import PENETRATION_BAD_MM, frame_flags
from pipeline.viz.tracks import joint_groups, skeleton_segments
from tests.viewer_fixtures import swinging_arm, write_clip


def test_body_meshes_posed_by_body_pose_match_mujoco_geom_placement():
    """A body mesh moved by the body's world pose lands where MuJoCo puts the geom's mesh vertices."""
    model = mujoco_model("g1")
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    lo, hi = joint_limits("g1")
    data.qpos[:3] = [0.3, -0.2, 0.8]
    data.qpos[3:7] = np.array([0.9, 0.1, -0.2, 0.3]) / np.linalg.norm([0.9, 0.1, -0.2, 0.3])
    data.qpos[7:] = rng.uniform(lo, hi)
    mujoco.mj_kinematics(model, data)
    meshes = body_meshes(model)
    assert sum(len(m.faces) for m in meshes) == sum(
        int(model.mesh_facenum[model.geom_dataid[g]])
        for g in range(model.ngeom)
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and model.geom_group[g] <= 2
    )
    for m in meshes:
        body = m.body_index + 1
        g = int(np.flatnonzero((model.geom_bodyid == body) & (model.geom_group <= 2))[0])
        mid = int(model.geom_dataid[g])
        v = model.mesh_vert[model.mesh_vertadr[mid] : model.mesh_vertadr[mid] + model.mesh_vertnum[mid]]
        expected = data.geom_xpos[g] + v @ data.geom_xmat[g].reshape(3, 3).T
        ours = data.xpos[body] + quat_rotate(
            np.broadcast_to(data.xquat[body], (len(v), 4)), m.vertices[: len(v)].astype(np.float64)
        )
        np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_simplify_keeps_shape_within_a_cell_and_drops_degenerate_faces():
    model = mujoco_model("g1")
    full = {m.body: m for m in body_meshes(model)}
    cell = 0.008
    for m in body_meshes(model, cell=cell):
        f = m.faces
        assert len(f) < len(full[m.body].faces)
        assert ((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])).all()
        assert f.max() < len(m.vertices)
        lo, hi = full[m.body].vertices.min(0), full[m.body].vertices.max(0)
        assert (m.vertices.min(0) >= lo - 1e-6).all() and (m.vertices.max(0) <= hi + 1e-6).all()
        assert np.all(hi - m.vertices.max(0) < cell) and np.all(m.vertices.min(0) - lo < cell)
    v, f = simplify(np.eye(3), np.array([[0, 1, 2]]), cell=10.0)  # everything in one cell: nothing left
    assert len(v) == 1 and len(f) == 0


def test_frame_flags_find_the_frames_that_were_made_bad():
    motion = swinging_arm(frames=40)
    qpos = motion.qpos.copy()
    qpos[10:13, 2] -= 0.05  # sink the robot 5 cm into the floor
    knee = motion.joint_names.index("left_knee_joint")
    _, hi = joint_limits("g1")
    qpos[25:27, 7 + knee] = hi[knee] + 0.1  # beyond the knee limit
    bad_motion = RobotMotion.from_qpos("g1", qpos, motion.fps, contacts=motion.contacts)
    calls: list[tuple[int, int]] = []
    flags = frame_flags(bad_motion, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (40, 40)
    assert (flags.floor_penetration_mm[10:13] > PENETRATION_BAD_MM).all()
    assert (flags.floor_penetration_mm[:10] < PENETRATION_BAD_MM).all()
    assert flags.beyond_limit[25:27, knee].all() and flags.near_limit[25:27, knee].all()
    assert not flags.beyond_limit[:25].any()
    np.testing.assert_array_equal(np.flatnonzero(flags.bad), [10, 11, 12, 25, 26])
    np.testing.assert_array_equal(flags.contacts, motion.contacts)
    assert flags.next_bad(0) == 10 and flags.next_bad(12) == 25 and flags.next_bad(30) == 10
    assert flags.next_bad(20, -1) == 12 and flags.next_bad(5, -1) == 26
    # The sole centres sit near the floor in the default pose (within the sole height of the model).
    assert np.abs(frame_flags(motion).foot_pos_w[0, :, 2]).max() < 0.05


def test_frame_flags_agree_with_the_clip_quality_report():
    quality = pytest.importorskip("pipeline.retarget.quality").quality
    motion = swinging_arm(frames=30, amplitude=2.5)
    qpos = motion.qpos.copy()
    roll = motion.joint_names.index("left_shoulder_roll_joint")
    qpos[:, 7 + roll] = np.linspace(0.0, -1.2, 30)  # sweep the left arm across the torso
    qpos[5, 2] -= 0.03
    m = RobotMotion.from_qpos("g1", qpos, motion.fps, contacts=motion.contacts)
    flags = frame_flags(m)
    report = quality(m)
    assert 5 <= int((flags.self_collision_depth_mm > 0).sum()) < 30  # some frames collide, not all
    assert report["self_collisions"] == int((flags.self_collision_depth_mm > 0).sum())
    assert report["self_collision_depth_max_mm"] == pytest.approx(
        flags.self_collision_depth_mm.max(), abs=1e-3
    )
    assert report["floor_penetration_max_mm"] == pytest.approx(flags.floor_penetration_mm.max(), abs=1e-3)
    for i in np.flatnonzero(flags.self_collision_depth_mm > 0):
        assert flags.self_collision_pairs[i] and len(flags.self_collision_pos_w[i])


def test_skeleton_segments_and_joint_groups():
    motion = swinging_arm(frames=3)
    seg = skeleton_segments(motion.keypoint_names, None, motion.keypoint_pos_w[0])
    assert seg.shape == (16, 2, 3)  # 17 canonical keypoints, 16 bones
    pelvis = motion.keypoint_names.index("pelvis")
    assert any(np.allclose(s[1], motion.keypoint_pos_w[0, pelvis]) for s in seg)
    seg = skeleton_segments(("a", "b", "c"), (-1, 0, 1), np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(seg[1], [[6, 7, 8], [3, 4, 5]])
    groups = joint_groups(motion.joint_names)
    assert set(groups) == {"left leg", "right leg", "torso", "left arm", "right arm"}
    assert sorted(i for g in groups.values() for i in g) == list(range(len(motion.joint_names)))


def test_catalog_lists_built_clips_with_quality_status(tmp_path):
    motion = swinging_arm(frames=5)
    write_clip(tmp_path, "good", motion, {"joint_limit_violations": 0, "self_collisions": 0})
    write_clip(tmp_path, "bad", motion, {"joint_limit_violations": 3, "self_collisions": 0})
    write_clip(tmp_path, "gated", motion, {"passed": False, "joint_limit_violations": 0})
    write_clip(tmp_path, "noreport", motion)
    entries = {e.name: e for e in list_clips(tmp_path)}
    assert {n: e.status for n, e in entries.items()} == {
        "bad": "fail",
        "gated": "fail",
        "good": "pass",
        "noreport": "no report",
    }
    assert resolve("retarget/good", tmp_path).robot == tmp_path / "robot" / "good.npz"
    assert resolve(str(tmp_path / "robot" / "bad.npz"), tmp_path).status == "fail"
    assert quality_status({"gate": {"passed": True}, "joint_limit_violations": 9}) == "pass"
    with pytest.raises(InputError, match="no built clip"):
        resolve("nothing", tmp_path)


def test_bad_inputs_exit_2_before_serving(tmp_path, capsys):
    missing = tmp_path / "missing.npz"
    assert main(["view", str(missing), "--port", "0"]) == 2
    assert "missing.npz: file not found" in capsys.readouterr().err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    assert main(["view", str(junk), "--port", "0"]) == 2
    assert "junk.npz: not a readable npz" in capsys.readouterr().err
    write_clip(tmp_path, "walk", swinging_arm(frames=5))
    (tmp_path / "robot" / "walk.quality.json").write_text("{oops")
    assert main(["view", "--data", str(tmp_path), "--port", "0"]) == 2
    assert "walk.quality.json: not a readable JSON" in capsys.readouterr().err
    (tmp_path / "robot" / "walk.quality.json").write_text(json.dumps({"passed": True}))
    assert main(["view", "walk", "--data", str(tmp_path), "--compare", "nope", "--port", "0"]) == 2
    assert "nope: no such file" in capsys.readouterr().err


def test_a_scene_beside_the_clip_is_drawn_and_follows_the_timeline(tmp_path):
    import socket

    import trimesh

    from pipeline.motion.scene import Scene, SceneObject
    from pipeline.viz.viewer import MotionViewer

    motion = swinging_arm(frames=10)
    path = write_clip(tmp_path, "box", motion)
    box = trimesh.creation.box(extents=(0.4, 0.4, 0.4))
    pos = np.stack([np.linspace(0.5, 1.5, 10), np.zeros(10), np.full(10, 0.2)], axis=1)
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (10, 1))
    crate = SceneObject("crate", np.asarray(box.vertices), np.asarray(box.faces), pos, quat)
    scene = Scene(fps=motion.fps, objects=(crate,), contacts=np.zeros((10, 0), bool))
    scene.save(path.with_name("box.scene.npz"))
    entry = resolve("box", tmp_path)
    assert entry.scene == path.with_name("box.scene.npz")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    viewer = MotionViewer([entry], port=port)
    try:
        assert len(viewer.scene_handles) == 1
        for frame in (7, 3):
            viewer.show(frame)
            np.testing.assert_allclose(viewer.scene_handles[0].position, pos[frame], atol=1e-6)
        assert viewer.frame_slider.max == 9 and int(viewer.frame_slider.value) == 3
    finally:
        viewer.stop()


def test_the_camera_follows_a_travelling_root_unless_told_not_to(tmp_path):
    import socket

    from pipeline.viz.viewer import MotionViewer

    motion = swinging_arm(frames=10)
    qpos = motion.qpos.copy()
    qpos[:, 0] = np.linspace(0.0, 2.0, 10)  # walks 2 m along +x
    from pipeline.robot.motion import RobotMotion

    write_clip(tmp_path, "stroll", RobotMotion.from_qpos("g1", qpos, motion.fps))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    viewer = MotionViewer([resolve("stroll", tmp_path)], port=port)
    try:
        camera = viewer.server.initial_camera
        look0, pos0 = np.array(camera.look_at), np.array(camera.position)
        viewer.show(9)
        np.testing.assert_allclose(np.array(camera.look_at) - look0, [2.0, 0.0, 0.0], atol=1e-6)
        np.testing.assert_allclose(np.array(camera.position) - pos0, [2.0, 0.0, 0.0], atol=1e-6)
        viewer.follow.value = False
        viewer.show(0)
        np.testing.assert_allclose(np.array(camera.look_at) - look0, [2.0, 0.0, 0.0], atol=1e-6)
    finally:
        viewer.stop()
