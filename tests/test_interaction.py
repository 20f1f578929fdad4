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
from pipeline.motion.scene import Scene, SceneObject, scene_path_for
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


def _box(
    name: str, centre: np.ndarray, size: np.ndarray, frames: int, quat=(1.0, 0.0, 0.0, 0.0)
) -> SceneObject:
    verts = CUBE * size
    pos = np.tile(centre, (frames, 1)).astype(float)
    return SceneObject(name, verts, np.zeros((0, 3), int), pos, np.tile(quat, (frames, 1)), True, "box")


def test_top_under_a_tilted_box_matches_a_vertical_scan() -> None:
    from pipeline.retarget.interaction_geometry import world_signed_distance
    from pipeline.retarget.interaction_scene import top_under

    c, s = np.cos(0.1), np.sin(0.1)  # 11.5 degrees about x: the top is not horizontal
    o = _box("b", np.array([1.0, 2.0, 0.4]), np.array([0.8, 0.6, 0.3]), 1, (c, s, 0.0, 0.0))
    xy = np.random.default_rng(4).uniform([0.4, 1.5], [1.6, 2.5], size=(40, 2))
    top = top_under(o, xy)
    zs = np.linspace(-0.5, 1.5, 4001)
    cs = ConvexSet.from_mesh(o.vertices)
    for p, t in zip(xy, top, strict=True):
        line = np.column_stack([np.full_like(zs, p[0]), np.full_like(zs, p[1]), zs])
        inside = world_signed_distance(cs, o.pos_w[0], o.quat_w[0], line)[0] <= 0
        if inside.any():
            assert abs(t - zs[inside].max()) < 1e-3, (p, t)
        else:
            assert np.isnan(t), (p, t)
    assert np.isfinite(top).any() and np.isnan(top).any()


def test_feet_over_raised_terrain_have_no_floor_contact(box_slice) -> None:  # type: ignore[no-untyped-def]
    from pipeline.retarget.interaction import raised_feet

    _, human, scene = box_slice
    t = human.num_frames
    feet = human.pos_w[:, [human.index("left_ankle"), human.index("right_ankle")], :2].reshape(-1, 2)
    mid = np.append(feet.mean(axis=0), 0.0)
    big = np.append(np.ptp(feet, axis=0) + 0.6, 0.0)
    step = scene.replace(
        objects=(_box("step", mid + np.array([0, 0, 0.05]), big + np.array([0, 0, 0.1]), t),)
    )
    sunk = scene.replace(
        objects=(_box("slab", mid - np.array([0, 0, 0.06]), big + np.array([0, 0, 0.1]), t),)
    )
    aside = scene.replace(
        objects=(_box("aside", mid + np.array([5.0, 0, 0.05]), big + np.array([0, 0, 0.1]), t),)
    )
    assert raised_feet(human, step).all()
    assert not raised_feet(human, sunk).any() and not raised_feet(human, aside).any()


def test_a_ground_slab_sets_the_floor(box_slice) -> None:  # type: ignore[no-untyped-def]
    from pipeline.retarget.interaction import floor_from_terrain

    _, human, scene = box_slice
    t = human.num_frames
    feet = human.pos_w[:, [human.index("left_ankle"), human.index("right_ankle")], :2].reshape(-1, 2)
    mid = np.append(feet.mean(axis=0), 0.0)
    # A slab reaching 0.5 m below the floor, its top 4 cm below it, under every foot: the floor is its top.
    slab = _box("slab", mid + np.array([0, 0, -0.29]), np.array([20.0, 20.0, 0.5]), t)
    h2, s2 = floor_from_terrain(human, scene.replace(objects=(slab,)))
    np.testing.assert_allclose(
        h2.pos_w - human.pos_w, np.broadcast_to([0, 0, 0.04], human.pos_w.shape), atol=1e-9
    )
    assert abs(s2.objects[0].vertices_w(0)[:, 2].max()) < 1e-9
    # A box beside the feet (not under all of them) rests on the floor: its bottom is the floor.
    box = _box("box", mid + np.array([1.0, 0, 0.3]), np.array([0.5, 0.5, 0.6]), t)
    h3, _ = floor_from_terrain(human, scene.replace(objects=(box,)))
    np.testing.assert_allclose(h3.pos_w, human.pos_w, atol=1e-9)


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


def _save_scene_clip(path: Path, human, scene) -> Path:  # type: ignore[no-untyped-def]
    """A HumanMotion at ``path`` with its scene beside it, as the extract stage writes them."""
    path.parent.mkdir(parents=True)
    human.save(path)
    scene.save(scene_path_for(path))
    return path


def test_retarget_auto_writes_scene_outputs(box_slice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.retarget.interaction_run import retarget_auto, scene_xml_path
    from pipeline.robot.motion import RobotMotion

    _, human, scene = box_slice
    src = _save_scene_clip(tmp_path / "human" / "sub3.npz", human, scene)
    out = tmp_path / "robot" / "sub3.npz"
    q = retarget_auto(src, out, params={"fps": 30.0}, interaction={"max_object_points": 20}, progress=False)
    assert q["method"] == "interaction"
    assert RobotMotion.load(out).num_frames == 30
    assert json.loads(out.with_name("sub3.quality.json").read_text())["contacts_kept_ratio"] >= 0.95
    rs = Scene.load(scene_path_for(out))
    assert rs.num_frames == 30 and scene_xml_path(out).is_file()


def test_retarget_auto_checks_the_stage_a_clip_is_listed_in(box_slice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.retarget.interaction_run import retarget_auto

    _, human, scene = box_slice
    with_scene = _save_scene_clip(tmp_path / "a" / "box.npz", human, scene)
    plain = tmp_path / "b" / "plain.npz"
    plain.parent.mkdir()
    human.replace(source={"file": "plain.npz"}).save(plain)  # no scene beside it, none in its provenance
    with pytest.raises(InputError, match="scene_clips"):
        retarget_auto(with_scene, tmp_path / "out.npz", scene_expected=False, progress=False)
    with pytest.raises(InputError, match="no scene"):
        retarget_auto(plain, tmp_path / "out.npz", scene_expected=True, progress=False)
    assert not list(tmp_path.glob("out*"))


def test_climb_feet_on_a_low_box_stay_out_of_it(tmp_path: Path) -> None:
    """mocap_climb_seq_1 starts on an 18 cm box that the floor contacts took for floor (79 mm deep before)."""
    p = tmp_path / "climb1.holosoma"
    p.write_text("clip: climb/mocap_climb_seq_1\n")
    human = read_clip(p, fps=30.0)
    scene = read_scene(p, human)
    sl = slice(0, 110)
    human = human.replace(pos_w=human.pos_w[sl], quat_w=human.quat_w[sl], contacts=human.contacts[sl])
    _, _, q = retarget_interaction(human, scene.sliced(0, 110), "g1", InteractionConfig())
    bars = passes(q)
    assert bars["object_penetration_max_mm"] and bars["floor_penetration_max_mm"], q
    assert q["contacts_kept_ratio"] >= 0.95 and q["self_collisions"] == 0, q
