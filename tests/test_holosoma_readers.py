"""Readers of holosoma_retargeting's demo data (read from the installed wheel) and the Scene contract."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.motion import read_clip
from pipeline.motion.holosoma import (
    MOCAP_JOINTS,
    SMPLH_JOINTS,
    _load_tensor,
    package_root,
    read_raw,
    read_scene,
    similarity,
    subject_heights,
)
from pipeline.motion.scene import Scene, scene_path_for
from pipeline.retarget.interaction_geometry import ConvexSet, world_signed_distance


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    out = {}
    for name, clip in (("sub3", "OMOMO_new/sub3_largebox_003"), ("climb1", "climb/mocap_climb_seq_1")):
        p = d / f"{name}.holosoma"
        p.write_text(f"clip: {clip}\n")
        out[name] = p
    return out


def test_tensor_reader_matches_torch_weights_only() -> None:
    import torch

    for pt in sorted((package_root() / "demo_data" / "OMOMO_new").glob("*.pt")):
        ours = _load_tensor(pt)
        ref = torch.load(pt, map_location="cpu", weights_only=True).detach().double().numpy()
        assert ours.shape == ref.shape and ours.shape[1] == 591
        np.testing.assert_array_equal(ours, ref)


def test_tensor_reader_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps(Evil(), protocol=2))
        zf.writestr("evil/byteorder", "little")
    with pytest.raises(InputError, match=r"refusing .*print"):
        _load_tensor(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(InputError):
        _load_tensor(tmp_path / "junk.pt")


def test_height_pickle_only_numpy_scalars() -> None:
    h = subject_heights()
    assert len(h) == 17 and all(1.5 < v < 2.0 for v in h.values())
    assert abs(h["sub3"] - 1.9411) < 1e-3


def test_joint_tables() -> None:
    assert len(SMPLH_JOINTS) == 52 and len(set(SMPLH_JOINTS)) == 52
    assert len(MOCAP_JOINTS) == 53 and len(set(MOCAP_JOINTS)) == 53


def _left_is_left(pos: np.ndarray, names: tuple[str, ...]) -> bool:
    i = names.index
    left = pos[i("left_hip")] - pos[i("right_hip")]
    fwd = pos[i("left_toe")] - pos[i("left_ankle")]
    up = pos[i("head")] - pos[i("pelvis")]
    return bool(np.dot(np.cross(fwd, left), up) > 0) and up[2] > 0.3


def test_omomo_reader(clips: dict[str, Path]) -> None:
    human, scene = read_raw(clips["sub3"])
    assert human.fps == 30.0 and human.num_frames == 196
    assert abs(human.subject_height - 1.9411) < 1e-3
    assert _left_is_left(human.pos_w[0], human.joint_names)
    assert 0.0 < human.pos_w[..., 2].min() < 0.1  # z up, floor near 0
    (box,) = scene.objects
    assert box.name == "largebox" and not box.static and len(box.vertices) == 13551
    np.testing.assert_allclose(np.linalg.norm(box.quat_w, axis=1), 1.0, atol=1e-9)
    assert scene.contact_bodies == ("left_wrist", "right_wrist")
    assert scene.contacts.sum() > 200
    # Labelled hand contacts are real: the wrist is a few centimetres from the box surface, and far otherwise.
    cs = ConvexSet.from_mesh(box.vertices)
    for k, part in enumerate(scene.contact_bodies):
        j = human.index(part)
        d = np.array(
            [
                world_signed_distance(cs, box.pos_w[t], box.quat_w[t], human.pos_w[t, j][None])[0][0]
                for t in range(196)
            ]
        )
        on = scene.contacts[:, k]
        assert np.median(d[on]) < 0.06 < np.median(d[~on])


def test_climb_reader(clips: dict[str, Path]) -> None:
    human, scene = read_raw(clips["climb1"])
    assert human.fps == 120.0 and human.num_frames == 2423
    assert _left_is_left(human.pos_w[0], human.joint_names)
    assert 1.5 < human.subject_height < 1.95
    assert [o.name for o in scene.objects] == ["box1", "box2"] and all(o.static for o in scene.objects)
    assert all(len(o.vertices) == 8 for o in scene.objects)
    tops = [o.vertices[:, 2].max() for o in scene.objects]
    assert max(tops) > 0.4
    # Feet labelled on terrain really stand on a top face.
    for k, part in enumerate(scene.contact_bodies):
        if part.endswith("ankle") and scene.contacts[:, k].any():
            o = scene.objects[scene.contact_objects[k]]
            toe = human.pos_w[scene.contacts[:, k], human.index(part.replace("ankle", "toe"))]
            assert np.median(toe[:, 2]) > o.vertices[:, 2].max() - 0.05


def test_read_clip_and_scene_stay_aligned(clips: dict[str, Path], tmp_path: Path) -> None:
    raw, raw_scene = read_raw(clips["sub3"])
    human = read_clip(clips["sub3"])  # processed: floor, facing +x
    scene = read_scene(clips["sub3"], human)
    assert human.source["processed"] and scene.num_frames == human.num_frames
    assert abs(human.pos_w[0, 0, 0]) < 1e-9  # moved: root at x = y = 0
    # Distances between any keypoint and the box are unchanged by the move.
    box0, box1 = raw_scene.objects[0], scene.objects[0]
    for t in (0, 100, 195):
        a = box0.vertices_w(t)[::500] - raw.pos_w[t, 5]
        b = box1.vertices_w(t)[::500] - human.pos_w[t, 5]
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1), atol=1e-6)
    # Resampled to another rate, the scene follows.
    h50 = read_clip(clips["sub3"], fps=50.0)
    s50 = read_scene(clips["sub3"], h50)
    assert s50.num_frames == h50.num_frames and s50.fps == 50.0
    # Round trip through the versioned file.
    path = scene_path_for(tmp_path / "sub3.npz")
    assert path.name == "sub3.scene.npz"
    scene.save(path)
    back = Scene.load(path)
    np.testing.assert_array_equal(back.objects[0].pos_w, scene.objects[0].pos_w)
    np.testing.assert_array_equal(back.contacts, scene.contacts)
    assert back.contact_bodies == scene.contact_bodies


def test_scene_validation(clips: dict[str, Path]) -> None:
    _, scene = read_raw(clips["sub3"])
    o = scene.objects[0]
    bad = scene.replace(objects=(o.__class__(**{**o.__dict__, "faces": o.faces + len(o.vertices)}),))
    with pytest.raises(InputError, match="faces"):
        bad.validate()
    with pytest.raises(InputError, match="contacts"):
        scene.replace(contacts=scene.contacts[:-1]).validate()


def test_pointer_file_errors(tmp_path: Path) -> None:
    p = tmp_path / "x.holosoma"
    p.write_text("clip: nowhere/abc\n")
    with pytest.raises(InputError, match="unknown clip"):
        read_raw(p)
    p.write_text("clip: OMOMO_new/sub99_nothing\n")
    with pytest.raises(InputError, match="does not exist"):
        read_raw(p)
    p.write_text("[1, 2]\n")
    with pytest.raises(InputError, match="expected YAML"):
        read_raw(p)


def test_similarity_recovers_a_move() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(17, 3))
    ang = 0.7
    rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    dst = 1.3 * src @ rot.T + np.array([1.0, -2.0, 0.5])
    s, r, t = similarity(src, dst)
    assert abs(s - 1.3) < 1e-9
    np.testing.assert_allclose(r, rot, atol=1e-9)
    np.testing.assert_allclose(t, [1.0, -2.0, 0.5], atol=1e-9)


def test_climb_arrays_are_plain_npy() -> None:
    # The climbing arrays are plain .npy: they load with allow_pickle=False.
    npy = next((package_root() / "demo_data" / "climb" / "mocap_climb_seq_0").glob("*.npy"))
    a = np.load(npy, allow_pickle=False)
    assert a.dtype == np.float32 and a.shape[1:] == (53, 3)


def test_scene_found_from_a_saved_human(clips: dict[str, Path], tmp_path: Path) -> None:
    """The retarget stage gets only data/human/<clip>.npz: the scene is found from its provenance."""
    from pipeline.motion.human import HumanMotion
    from pipeline.retarget.interaction_run import find_scene

    human = read_clip(clips["climb1"], fps=50.0)
    path = tmp_path / "climb1.npz"
    human.save(path)
    loaded = HumanMotion.load(path)
    scene = find_scene(path, loaded)
    assert scene is not None and scene.num_frames == loaded.num_frames and scene.fps == 50.0
    direct = read_scene(clips["climb1"], human)
    np.testing.assert_allclose(scene.objects[0].pos_w, direct.objects[0].pos_w, atol=1e-9)
    np.testing.assert_array_equal(scene.contacts, direct.contacts)
