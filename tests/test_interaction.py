"""Interaction-mesh retargeting: geometry checked as math, the method end to end on short demo slices."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.motion import read_clip
from pipeline.motion.holosoma import read_scene
from pipeline.motion.scene import Scene, scene_path_for
from pipeline.retarget.interaction import InteractionConfig, retarget_interaction, uniform_laplacian
from pipeline.retarget.interaction_geometry import ConvexSet, closest_on_triangles, sample_surface
from pipeline.retarget.interaction_quality import passes, scene_metrics
from pipeline.retarget.interaction_scene import robot_scene, scene_mjcf

CUBE = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])


def _cube_sd(p: np.ndarray) -> np.ndarray:
    q = np.abs(p) - 0.5
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def test_signed_distance_of_a_cube_is_exact() -> None:
    cs = ConvexSet.from_mesh(CUBE)
    p = np.random.default_rng(0).uniform(-1.5, 1.5, size=(400, 3))
    d, grad, closest = cs.signed_distance(p)
    np.testing.assert_allclose(d, _cube_sd(p), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(grad, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(_cube_sd(closest), 0.0, atol=1e-9)
    # The gradient is the derivative of the distance (finite differences, away from edges).
    eps = 1e-6
    ok = np.abs(np.abs(p).max(axis=1) - np.sort(np.abs(p), axis=1)[:, 1]) > 1e-2
    for k in range(3):
        dp = np.zeros(3)
        dp[k] = eps
        fd = (cs.signed_distance(p + dp)[0] - cs.signed_distance(p - dp)[0]) / (2 * eps)
        np.testing.assert_allclose(fd[ok], grad[ok, k], atol=1e-5)


def test_closest_point_on_triangles_beats_sampling() -> None:
    rng = np.random.default_rng(1)
    tri = rng.normal(size=(5, 3, 3))
    p = rng.normal(size=(50, 3)) * 2
    c = closest_on_triangles(p, tri)
    u, v = np.meshgrid(np.linspace(0, 1, 60), np.linspace(0, 1, 60))
    m = (u + v) <= 1
    bary = np.stack([1 - u[m] - v[m], u[m], v[m]], axis=1)
    dense = np.einsum("sk,fkd->fsd", bary, tri).reshape(-1, 3)
    brute = np.linalg.norm(p[:, None] - dense[None], axis=2).min(axis=1)
    mine = np.linalg.norm(p - c, axis=1)
    assert np.all(mine <= brute + 1e-9) and np.all(mine > brute - 0.05)


def test_uniform_laplacian() -> None:
    pts = np.random.default_rng(2).normal(size=(30, 3))
    lap = uniform_laplacian(pts)
    np.testing.assert_allclose(lap.sum(axis=1), 0.0, atol=1e-12)  # translation invariant
    np.testing.assert_allclose(lap @ (pts + np.array([1.0, 2.0, 3.0])), lap @ pts, atol=1e-12)
    assert (np.diag(lap) == 1.0).all() and ((lap < 0).sum(axis=1) >= 3).all()


def test_surface_samples_lie_on_the_hull() -> None:
    s = sample_surface(CUBE, np.zeros((0, 3), int), 200, seed=3)
    np.testing.assert_allclose(_cube_sd(s), 0.0, atol=1e-9)
    np.testing.assert_array_equal(s, sample_surface(CUBE, np.zeros((0, 3), int), 200, seed=3))


def test_config_rejects_unknown_keys() -> None:
    cfg = InteractionConfig.from_dict({"fps": 25, "laplacian_weight": 3, "iterations": 3})
    assert cfg.kinematic.fps == 25.0 and cfg.laplacian_weight == 3.0 and cfg.kinematic.iterations == 3
    with pytest.raises(InputError, match="unknown keys"):
        InteractionConfig.from_dict({"lapalcian_weight": 1.0})
    with pytest.raises(InputError):
        InteractionConfig.from_dict({"contact_tolerance": "x"})


@pytest.fixture(scope="module")
def box_slice(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    p = tmp_path_factory.mktemp("clips") / "sub3.holosoma"
    p.write_text("clip: OMOMO_new/sub3_largebox_003\n")
    human = read_clip(p, fps=30.0)
    scene = read_scene(p, human)
    a, b = 60, 90  # the box is carried with both hands
    sl = slice(a, b)
    human = human.replace(pos_w=human.pos_w[sl], quat_w=human.quat_w[sl], contacts=human.contacts[sl])
    return p, human, scene.sliced(a, b)


def test_scene_mjcf_compiles_with_the_robot(box_slice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, scene = box_slice
    rs = robot_scene(scene, 0.7)
    (tmp_path / "scene.xml").write_text(scene_mjcf(rs))
    model = mujoco.MjModel.from_xml_string(f'<mujoco><include file="{tmp_path / "scene.xml"}"/></mujoco>')
    assert model.nmocap == 1 and model.nmesh == 1
    # The fragment's hull matches the geometry the optimiser uses.
    body = model.body("largebox")
    np.testing.assert_allclose(model.body_pos[body.id], rs.objects[0].pos_w[0], atol=1e-5)


def test_box_slice_meets_the_bars_and_beats_kinematic(box_slice) -> None:  # type: ignore[no-untyped-def]
    from pipeline.retarget.config import RetargetConfig
    from pipeline.retarget.core import retarget

    _, human, scene = box_slice
    assert scene.contacts.all(axis=0).any()  # the slice has hand contacts
    _, rscene, q = retarget_interaction(human, scene, "g1", InteractionConfig())
    assert q["frames"] == 30 and q["contact_frames"] > 30
    bars = passes(q)
    assert all(bars.values()), (bars, q)
    # The kinematic retargeter (same targets, no scene) neither keeps the hands on the box nor stays out of it.
    kin_motion, _ = retarget(human, "g1", RetargetConfig(fps=30.0))
    kq = scene_metrics(kin_motion, rscene)
    assert kq["contact_err_mean_mm"] > 2 * max(q["contact_err_mean_mm"], 5.0), (kq, q)


def test_retarget_auto_writes_scene_outputs(box_slice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.retarget.interaction_run import retarget_auto, scene_xml_path
    from pipeline.robot.motion import RobotMotion

    _, human, scene = box_slice
    src = tmp_path / "human" / "sub3.npz"
    src.parent.mkdir()
    human.save(src)
    scene.save(scene_path_for(src))
    out = tmp_path / "robot" / "sub3.npz"
    q = retarget_auto(src, out, params={"fps": 30.0}, interaction={"max_object_points": 20}, progress=False)
    assert q["method"] == "interaction"
    assert RobotMotion.load(out).num_frames == 30
    assert json.loads(out.with_name("sub3.quality.json").read_text())["contacts_kept_ratio"] >= 0.95
    rs = Scene.load(scene_path_for(out))
    assert rs.num_frames == 30 and scene_xml_path(out).is_file()
