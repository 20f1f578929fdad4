"""Video extraction: the geometry as math, bad input, ground-truth videos, real footage."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.geometry import quat_rotate, to_rotation
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS
from pipeline.motion.video import VideoOptions, fill_holes, segments
from pipeline.motion.video_fit import (
    L_EL,
    L_SH,
    L_WR,
    R_EL,
    R_SH,
    R_WR,
    fit_skeleton,
    lowpass,
    onto_rays,
    overlap_hidden,
    root_translation,
    segment_rotations,
    smooth_image,
    snap_feet,
    weighted_smooth,
)

os.environ.setdefault("MUJOCO_GL", "egl")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
J = {n: i for i, n in enumerate(CANONICAL_JOINTS)}


def t_pose() -> np.ndarray:
    """(17, 3) a T-pose facing +x, feet on the floor, z up."""
    p = {
        "pelvis": (0, 0, 0.95),
        "torso": (0, 0, 1.25),
        "head": (0, 0, 1.5),
        "left_shoulder": (0, 0.18, 1.4),
        "left_elbow": (0, 0.46, 1.4),
        "left_wrist": (0, 0.72, 1.4),
        "left_hip": (0, 0.09, 0.9),
        "left_knee": (0, 0.09, 0.5),
        "left_ankle": (0, 0.09, 0.07),
        "left_toe": (0.14, 0.09, 0.02),  # the foot slopes down to the toe base
    }
    for k in list(p):
        if k.startswith("left_"):
            x, y, z = p[k]
            p["right_" + k[5:]] = (x, -y, z)
    return np.array([p[n] for n in CANONICAL_JOINTS], dtype=float)


# ---------------------------------------------------------------- math, no pose model


def test_segments_merge_short_gaps_and_split_long_ones() -> None:
    found = np.array([0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    assert segments(found, max_gap=1) == [(1, 6), (10, 13)]
    assert segments(found, max_gap=4) == [(1, 13)]
    assert segments(np.zeros(5, dtype=bool), max_gap=3) == []


def test_fill_holes_is_linear_between_found_frames() -> None:
    x = np.array([0.0, np.nan, np.nan, 3.0, 4.0])[:, None]
    out = fill_holes(np.nan_to_num(x), np.isfinite(x[:, 0]))
    np.testing.assert_allclose(out[:, 0], [0, 1, 2, 3, 4])


def test_weighted_smooth_at_full_confidence_is_a_low_pass_at_the_cutoff() -> None:
    fps, t = 30.0, np.arange(600) / 30.0
    for f, lo, hi in ((1.0, 0.99, 1.0), (6.0, 0.6, 0.8), (12.0, 0.0, 0.3)):
        x = np.sin(2 * np.pi * f * t)[:, None]
        gain = weighted_smooth(x, np.ones(600), fps, 6.0)[100:-100].std() / x[100:-100].std()
        assert lo <= gain <= hi, (f, gain)


def test_weighted_smooth_bridges_an_occluded_stretch_from_its_confident_neighbours() -> None:
    rng = np.random.default_rng(3)
    fps, t = 30.0, np.arange(150) / 30.0
    truth = np.stack([0.3 * np.sin(2 * np.pi * 0.7 * t), 0.2 * t], axis=-1)  # (T, 2) a smooth path
    seen = truth + rng.normal(scale=0.005, size=truth.shape)
    vis = np.full(150, 0.95)
    hidden = slice(60, 84)  # 0.8 s where the model only guesses: far off, jittery, and says so
    seen[hidden] += 0.25 + rng.normal(scale=0.05, size=(24, 2))
    vis[hidden] = 0.01
    weighted = weighted_smooth(seen, vis**2, fps, 6.0)
    plain = lowpass(seen, fps, 6.0)
    err_w = np.linalg.norm(weighted[hidden] - truth[hidden], axis=-1).mean()
    err_p = np.linalg.norm(plain[hidden] - truth[hidden], axis=-1).mean()
    assert err_w < 0.5 * err_p, (err_w, err_p)
    # the confident frames are left as they were seen (up to the smoothing)
    assert np.abs(weighted[:50] - truth[:50]).max() < 0.02
    # an unseen end does not run off with the last velocity: it holds near the last confident frames
    seen[120:] = rng.normal(scale=1.0, size=(30, 2))
    vis[120:] = 0.0
    out = weighted_smooth(seen, vis**2, fps, 6.0)
    speed = np.linalg.norm(np.diff(truth, axis=0), axis=-1).max() * fps
    assert np.linalg.norm(out[-1] - out[119]) < speed * 0.5 + 0.02


def test_smooth_image_carries_a_hidden_hand_along_with_its_limb() -> None:
    """A body sways across the image while a hand, hidden for 1 s, is reported on top of the shoulder (a
    guess with low visibility): the hand is bridged in its limb's frame, not from its image path."""
    rng = np.random.default_rng(4)
    fps, t = 30.0, np.arange(120) / 30.0
    body = np.stack([320 + 80 * np.sin(2 * np.pi * 0.8 * t), 240 + 0 * t], axis=-1)  # (T, 2) pixels
    image = np.repeat(body[:, None], 33, axis=1) + rng.normal(scale=0.5, size=(120, 33, 2))
    image[:, L_EL] += (10.0, 40.0)  # elbow below the shoulder, hand in front of it
    image[:, L_WR] += (40.0, 50.0)
    truth = image[:, L_WR].copy()
    vis = np.full((120, 33), 0.9)
    hidden = slice(45, 75)
    image[hidden, L_WR] = image[hidden, L_SH] + rng.normal(scale=3.0, size=(30, 2))
    vis[hidden, L_WR] = 0.003
    out = smooth_image(image, vis, fps, 6.0)
    err = np.linalg.norm(out[hidden, L_WR] - truth[hidden], axis=-1).max()
    err_plain = np.linalg.norm(lowpass(image, fps, 6.0)[hidden, L_WR] - truth[hidden], axis=-1).max()
    err_abs = np.linalg.norm(
        weighted_smooth(image, vis**2, fps, 6.0)[hidden, L_WR] - truth[hidden], axis=-1
    ).max()
    assert err < 15.0 and err < 0.3 * err_abs and err_plain > 50.0, (err, err_abs, err_plain)


def side_view(n: int, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 33, 2) image landmarks of a person seen from the side, walking right across the image with the
    arms swinging in opposite phase (the far, right arm 20 px behind the near one), and their true
    positions; 200 px from shoulders to ankles."""
    t = np.arange(n) / fps
    image = np.zeros((n, 33, 2))
    image[:, :, 0] = 100 + 60 * t[:, None]  # the whole body walks right at 60 px/s
    image[:, :, 1] = 100.0
    image[:, 23:33, 1] = 180.0  # hips and legs
    image[:, [27, 28, 29, 30, 31, 32], 1] = 300.0  # ankles and feet
    swing = 25 * np.sin(2 * np.pi * 0.9 * t)
    for sh, el, wr, sgn, dx in ((L_SH, L_EL, L_WR, 1.0, 0.0), (R_SH, R_EL, R_WR, -1.0, -20.0)):
        image[:, sh, 0] += dx
        image[:, el] = image[:, sh] + np.stack([sgn * 0.5 * swing, 0 * t + 45], axis=-1)
        image[:, wr] = image[:, el] + np.stack([sgn * swing + 10, 0 * t + 40], axis=-1)
    return image, image.copy()


def test_overlap_hidden_marks_the_less_visible_of_an_overlapping_pair_as_unseen() -> None:
    image, _ = side_view(60)
    vis = np.full((60, 33), 0.9)
    vis[:, R_WR] = 0.4
    gap = np.linalg.norm(image[:, L_WR] - image[:, R_WR], axis=-1)
    close = gap < 0.15 * 200
    assert close.any() and (~close).any()
    out = overlap_hidden(image, vis, 30.0)
    np.testing.assert_array_equal(out[:, R_WR], np.where(close, 0.0, 0.4))
    np.testing.assert_array_equal(np.delete(out, R_WR, axis=1), np.delete(vis, R_WR, axis=1))
    # the same scene twice as big in the image: the same landmarks are hidden
    big = overlap_hidden(2 * image, vis, 30.0)
    np.testing.assert_array_equal(big, out)


def test_a_far_hand_put_on_the_near_one_is_bridged_once_marked_hidden() -> None:
    """The pose model puts the far (right) hand on top of the near one for 0.7 s, with visibility 0.4:
    trusted as seen, it is followed; marked hidden by the overlap, it is bridged from where it was seen."""
    image, truth = side_view(90)
    vis = np.full((90, 33), 0.95)
    swapped = slice(40, 61)
    image[swapped, R_WR] = image[swapped, L_WR] + 2.0
    vis[swapped, R_WR] = 0.4
    trusted = smooth_image(image, vis, 30.0, 6.0)[swapped, R_WR]
    bridged = smooth_image(image, overlap_hidden(image, vis, 30.0), 30.0, 6.0)[swapped, R_WR]
    err_trusted = np.linalg.norm(trusted - truth[swapped, R_WR], axis=-1).mean()
    err_bridged = np.linalg.norm(bridged - truth[swapped, R_WR], axis=-1).mean()
    assert err_bridged < 0.5 * err_trusted, (err_bridged, err_trusted)


def test_root_translation_recovers_the_camera_frame_position() -> None:
    rng = np.random.default_rng(0)
    fx, fy, cx, cy = 500.0, 520.0, 320.0, 240.0
    body = rng.normal(scale=0.4, size=(5, 33, 3))
    t_true = np.stack([rng.uniform(-1, 1, 5), rng.uniform(-0.5, 0.5, 5), rng.uniform(3, 8, 5)], axis=-1)
    p = body + t_true[:, None]
    image = np.stack([fx * p[..., 0] / p[..., 2] + cx, fy * p[..., 1] / p[..., 2] + cy], axis=-1)
    t = root_translation(body, image, np.ones((5, 33)), (fx, fy, cx, cy))
    np.testing.assert_allclose(t, t_true, atol=1e-6)


def test_onto_rays_keeps_depth_and_lands_on_the_image_positions() -> None:
    rng = np.random.default_rng(2)
    fx, fy, cx, cy = 500.0, 520.0, 320.0, 240.0
    pts = rng.normal(scale=0.4, size=(4, 33, 3))
    t = np.stack([rng.uniform(-1, 1, 4), rng.uniform(-0.5, 0.5, 4), rng.uniform(3, 8, 4)], axis=-1)
    image = rng.uniform(0, 480, size=(4, 33, 2))
    out = onto_rays(pts, image, t, (fx, fy, cx, cy))
    p = out + t[:, None]
    np.testing.assert_allclose(out[..., 2], pts[..., 2])
    np.testing.assert_allclose(fx * p[..., 0] / p[..., 2] + cx, image[..., 0])
    np.testing.assert_allclose(fy * p[..., 1] / p[..., 2] + cy, image[..., 1])


def test_fit_skeleton_holds_bone_lengths_and_keeps_directions() -> None:
    rng = np.random.default_rng(1)
    obs = t_pose()[None] + rng.normal(scale=0.03, size=(20, 17, 3))
    lengths = np.array([0.0] + [0.3] * 16)
    fitted = fit_skeleton(obs, lengths)
    for j, par in enumerate(CANONICAL_PARENTS):
        if par >= 0:
            d_fit = fitted[:, j] - fitted[:, par]
            d_obs = obs[:, j] - obs[:, par]
            np.testing.assert_allclose(np.linalg.norm(d_fit, axis=-1), 0.3)
            cos = np.sum(d_fit * d_obs, -1) / np.linalg.norm(d_fit, axis=-1) / np.linalg.norm(d_obs, axis=-1)
            np.testing.assert_allclose(cos, 1.0, atol=1e-9)


def test_segment_rotations_identity_at_rest_and_follow_a_whole_body_turn() -> None:
    rest = t_pose()
    face = np.array([[1.0, 0.0, 0.0]])
    q = segment_rotations(rest[None], face)
    np.testing.assert_allclose(np.abs(q[..., 0]), 1.0, atol=1e-6)
    turn = to_rotation(np.array([np.cos(0.4), 0.0, 0.0, np.sin(0.4)]))  # 0.8 rad about z
    q = segment_rotations(turn.apply(rest)[None], turn.apply(face))
    for j in range(17):
        np.testing.assert_allclose(
            quat_rotate(q[0, j], [1.0, 0.2, 0.3]), turn.apply([1.0, 0.2, 0.3]).ravel(), atol=1e-6
        )


def test_snap_feet_puts_the_contact_foot_on_the_floor_and_keeps_leg_lengths() -> None:
    pose = np.repeat(t_pose()[None], 30, axis=0)
    pose[:, :, 2] += 0.05  # floating 5 cm
    pose[:, J["left_knee"], 0] += 0.2  # a bent knee: room to reach down, and the IK plane
    contacts = np.zeros((30, 2), dtype=bool)
    contacts[:, 0] = True
    out = snap_feet(pose, contacts, fps=30.0, height=1.7)
    mid = 15
    sole = min(out[mid, J["left_ankle"], 2] - 0.039 * 1.7, out[mid, J["left_toe"], 2] - 0.012 * 1.7)
    assert abs(sole) < 0.01
    for a, b in (("left_hip", "left_knee"), ("left_knee", "left_ankle")):
        np.testing.assert_allclose(
            np.linalg.norm(out[:, J[a]] - out[:, J[b]], axis=-1),
            np.linalg.norm(pose[:, J[a]] - pose[:, J[b]], axis=-1),
        )
    np.testing.assert_allclose(out[:, J["right_ankle"]], pose[:, J["right_ankle"]])


def test_snap_feet_holds_a_jittery_contact_foot_still() -> None:
    rng = np.random.default_rng(5)
    pose = np.repeat(t_pose()[None], 30, axis=0)
    pose[:, J["left_knee"], 0] += 0.2
    jitter = rng.normal(scale=0.01, size=(30, 3))  # landmark noise on a planted foot
    pose[:, J["left_ankle"]] += jitter
    pose[:, J["left_toe"]] += jitter
    contacts = np.zeros((30, 2), dtype=bool)
    contacts[5:25, 0] = True
    out = snap_feet(pose, contacts, fps=30.0, height=1.7)
    ankle = out[6:24, J["left_ankle"]]
    assert np.abs(ankle - ankle.mean(axis=0)).max() < 1e-4  # still (0.1 mm), though the landmarks jitter 1 cm
    sole = min(ankle[0, 2] - 0.039 * 1.7, out[6, J["left_toe"], 2] - 0.012 * 1.7)
    assert abs(sole) < 0.01
    np.testing.assert_allclose(out[[0, 1, 28, 29]], pose[[0, 1, 28, 29]])  # untouched away from the run


def test_video_options_reject_unknown_keys_and_bad_heights() -> None:
    with pytest.raises(InputError, match="unknown video params"):
        VideoOptions.from_params({"focal": 3}, "clip.mp4")
    with pytest.raises(InputError, match="not a human height"):
        VideoOptions.from_params({"subject_height": 175}, "clip.mp4")
    o = VideoOptions.from_params({"hfov_deg": 90}, "clip.mp4")
    assert o.intrinsics(640, 480) == pytest.approx((320.0, 320.0, 320.0, 240.0))


# ---------------------------------------------------------------- bad input


def test_empty_and_non_video_files_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    from pipeline.motion import read_clip

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_clip(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError, match=r"not a readable video|no frame could be decoded"):
        read_clip(text)
    folder = tmp_path / "frames"
    folder.mkdir()
    with pytest.raises(InputError, match="no images"):
        read_clip(folder)


def test_video_without_a_person_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    import imageio.v2 as imageio

    from pipeline.motion import read_clip

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.mp4"
    with imageio.get_writer(str(path), fps=30, codec="libx264", macro_block_size=1) as w:
        for _ in range(20):
            w.append_data(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="no person found in any of the 20 frames"):
        read_clip(path)


# ---------------------------------------------------------------- ground truth


@pytest.fixture(scope="module")
def truth_video(tmp_path_factory: pytest.TempPathFactory):
    """A 2 s excerpt of a CMU clip driving the Anny body, rendered with known intrinsics: (the body's own
    keypoints as the truth motion, mp4 path, camera)."""
    pytest.importorskip("mediapipe")
    from pipeline.motion import read_clip
    from pipeline.motion.video_synth import default_camera, render_video

    clip = DATA / "cmu" / "131_01.bvh"
    if not clip.exists():
        pytest.skip(f"{clip} not present")
    full = read_clip(clip, fps=30.0)
    clip = full.replace(pos_w=full.pos_w[90:150], quat_w=full.quat_w[90:150], contacts=full.contacts[90:150])
    path = tmp_path_factory.mktemp("video") / "truth.mp4"
    cam, truth = render_video(clip, path, camera=default_camera(clip, width=480, height=360))
    return truth, path, cam


def test_body_mesh_follows_the_clip_and_stands_on_the_floor() -> None:
    pytest.importorskip("anny")
    from pipeline.motion import read_clip
    from pipeline.motion.video_synth import pose_body

    clip = DATA / "cmu" / "131_02.bvh"
    if not clip.exists():
        pytest.skip(f"{clip} not present")
    full = read_clip(clip, fps=30.0)
    m = full.replace(pos_w=full.pos_w[:90], quat_w=full.quat_w[:90], contacts=full.contacts[:90])
    body = pose_body(m)
    truth = body.truth
    # every limb segment of the body points where the clip's does (only the proportions differ)
    for name in ("left_elbow", "right_wrist", "left_knee", "right_ankle"):
        j, p = J[name], CANONICAL_PARENTS[J[name]]
        a, b = truth.pos_w[:, j] - truth.pos_w[:, p], m.pos_w[:, j] - m.pos_w[:, p]
        cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        assert cos.min() > 0.9999, (name, cos.min())
    # the skin stays around its joints, the feet stand on the floor, the truth has the subject's height
    v = body.vertices(0, len(truth.pos_w))
    for name in ("head", "left_wrist", "right_toe", "pelvis"):
        gap = np.linalg.norm(v - truth.pos_w[:, J[name], None], axis=-1).min(axis=1)
        assert gap.max() < 0.12, (name, gap.max())
    low = v[..., 2].min(axis=1)
    assert low.min() > -0.03 and np.median(low[truth.contacts.any(axis=1)]) < 0.02, (
        low.min(),
        np.median(low),
    )
    assert truth.contacts.any(axis=0).all() and truth.subject_height == m.subject_height


def test_extraction_matches_the_rendered_clip(truth_video) -> None:
    from pipeline.motion import read_clip
    from pipeline.motion.video_synth import contact_agreement, pa_mpjpe

    truth, path, cam = truth_video
    got = read_clip(path, subject_height=truth.subject_height, video=cam.intrinsics())
    notes = got.source["video"]
    assert got.source["format"] == "video" and got.source["processed"]
    a, b = notes["kept"]
    assert b - a >= 50, notes
    assert len(got.source["frame_confidence"]) == got.num_frames
    err = pa_mpjpe(got.pos_w, truth.pos_w[a:b])
    assert err.mean() < 0.11, err.mean()
    assert contact_agreement(got.contacts, truth.contacts[a:b]) > 0.6
    assert got.subject_height == pytest.approx(truth.subject_height)
    # the keypoints MediaPipe has no landmark for mean what a mocap rig's do: the pelvis at the hip joints'
    # level, the head (top of the neck) at the ears, each within 4 cm of the body's own (vertically)
    for point, pair in (("pelvis", "hip"), ("head", "shoulder")):
        rise = [
            np.mean(pos[:, J[point], 2] - (pos[:, J[f"left_{pair}"], 2] + pos[:, J[f"right_{pair}"], 2]) / 2)
            for pos in (got.pos_w, truth.pos_w[a:b])
        ]
        assert abs(rise[0] - rise[1]) < 0.04, (point, rise)
    # the skeleton is held constant over the clip
    thigh = np.linalg.norm(got.pos_w[:, J["left_knee"]] - got.pos_w[:, J["left_hip"]], axis=-1)
    assert thigh.std() < 0.01 * thigh.mean() + 1e-3


def test_image_folder_with_a_corrupt_frame_is_a_flagged_partial_result(truth_video, tmp_path: Path) -> None:
    import imageio.v2 as imageio

    from pipeline.motion import read_clip

    truth, path, cam = truth_video
    frames = imageio.mimread(str(path), memtest=False)[:30]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        imageio.imwrite(folder / f"{i:04d}.png", f)
    (folder / "0012.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # a corrupt frame mid-clip
    got = read_clip(folder, subject_height=truth.subject_height, video={**cam.intrinsics(), "fps": 30})
    notes = got.source["video"]
    assert notes["partial"] and notes["frames_decoded"] == 29 and notes["interpolated_frames"] >= 1
    assert got.num_frames == notes["kept"][1] - notes["kept"][0]
    assert got.source["frame_confidence"][12 - notes["kept"][0]] == 0.0


def test_corrupt_bytes_mid_video_still_give_a_flagged_or_complete_motion(truth_video, tmp_path: Path) -> None:
    from pipeline.motion import read_clip

    truth, path, cam = truth_video
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = bytes(4000)
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    got = read_clip(bad, subject_height=truth.subject_height, video=cam.intrinsics())
    notes = got.source["video"]
    assert got.num_frames >= 20
    lost = notes["frames_expected"] - notes["frames_decoded"]
    assert notes["partial"] or lost == 0, notes


# ---------------------------------------------------------------- real footage


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLES.is_dir(), reason="Debian opencv-doc samples not installed")
def test_people_are_found_in_opencv_samples_and_frames_without_people_are_handled(tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    import cv2

    from pipeline.motion import read_clip

    # Photos: a folder alternating a photo with a person and a blank frame (no person).
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = cv2.imread(str(SAMPLES / "basketball1.png"))
    for i in range(12):
        img = photo if i not in (5, 6) else np.full_like(photo, 128)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    got = read_clip(folder, video={"fps": 10, "max_gap_s": 0.3})
    notes = got.source["video"]
    assert notes["frames_with_person"] == 10 and notes["interpolated_frames"] == 2 and notes["partial"]
    conf = np.array(got.source["frame_confidence"])
    assert (conf[[5, 6]] == 0).all() and (conf[[0, 4, 7, 11]] > 0.5).all()

    # Video: people walking far from the camera (small: found through the people detector and a crop).
    cap = cv2.VideoCapture(str(SAMPLES / "vtest.avi"))
    short = tmp_path / "vtest.avi"
    out = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"MJPG"), 10, (768, 576))
    for _ in range(25):
        ok, frame = cap.read()
        assert ok
        out.write(frame)
    out.release()
    got = read_clip(short, subject_height=1.7)
    assert got.source["video"]["frames_with_person"] >= 20
    assert 1.0 < got.pos_w[:, J["head"], 2].mean() < 1.9

    # Only frames without a person: refused, not an empty motion.
    for f in folder.iterdir():
        cv2.imwrite(str(f), np.full_like(photo, 128))
    with pytest.raises(InputError, match="no person found"):
        read_clip(folder)
    shutil.rmtree(folder)


@pytest.mark.slow
def test_add_clip_registers_a_video_with_its_camera_and_the_stage_reads_it(
    truth_video, tmp_path: Path
) -> None:
    import subprocess
    import sys

    import yaml

    from pipeline.clips import add_clip
    from pipeline.motion import read_clip

    truth, path, cam = truth_video
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=repo, env=env, check=True)
    (repo / "params.yaml").write_text("clips: {}\n")
    h = round(truth.subject_height, 3)
    dest = add_clip(path, name="me", root=repo, subject_height=h, video=cam.intrinsics())
    assert dest == repo / "motions" / "raw" / "me.mp4"
    entry = yaml.safe_load((repo / "params.yaml").read_text())["clips"]["me"]
    assert entry["format"] == "video" and entry["subject_height"] == h
    assert entry["video"]["fx"] == pytest.approx(cam.fx)
    got = read_clip(
        repo / entry["path"], fps=50.0, subject_height=entry["subject_height"], video=entry["video"]
    )
    assert got.fps == 50.0 and got.source["format"] == "video"
