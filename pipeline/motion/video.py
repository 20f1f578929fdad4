"""Monocular video (a file or an image folder) -> canonical :class:`HumanMotion`.

Steps (landmarks from :mod:`pipeline.motion.video_pose`, MediaPipe Pose full model):

1. Frames where no person was found (or that could not be decoded), and frames where the hips jump by more
   than twice the trunk's image length from their neighbours' median (another person, a false detection),
   are holes. Holes up to ``max_gap_s`` inside a run are interpolated (linearly, confidence 0); longer holes
   split the clip into segments and the longest segment is kept (``segment`` picks another). The result is
   flagged in ``source["video"]`` (``partial``, ``segments``, ``kept``, ``interpolated_frames``). A clip with
   no person, or no segment of at least ``min_segment_s``, is refused with :class:`InputError`.
2. Temporal smoothing, zero-phase, cut-off ``cutoff_hz``: a Gaussian low-pass of the metric landmarks'
   x and y; the image landmarks are smoothed by confidence (:func:`pipeline.motion.video_fit.smooth_image`:
   each limb landmark as an offset from its parent landmark, each sample weighted by its visibility
   squared), so a landmark the model only guesses (an arm hidden behind the body, an interpolated hole) is
   bridged, in the limb's own frame, from the frames where it was seen. An elbow or wrist that the image
   puts on top of its other-side twin, and that is the less visible of the two, counts as unseen (in a
   side view the model tends to put the far arm on the near one;
   :func:`pipeline.motion.video_fit.overlap_hidden`). The metric landmarks' depths, the model's least
   certain coordinate, are smoothed the same way with the lower ``root_cutoff_hz``.
3. Canonical keypoints from the landmarks (MediaPipe has no spine or neck points): pelvis 0.05, torso 0.8 of
   the way from the hip centre to the shoulder centre (a rig's root sits at the hip joints' level); head (top
   of the neck) at the centre of the ears; toe three quarters of the way from the ankle to the tip of the foot.
4. A skeleton: each bone's length is its median over the confident frames, left and right averaged, and is
   held constant; the skeleton is scaled so its standing height (from the legs, as every reader does) is the
   subject's height. Fitting (after step 5): each frame's skeleton follows the observed bone directions from
   the root out.
5. Root path: per frame, the translation that best re-projects the (scaled) 3D landmarks onto their image
   positions through a pinhole camera (linear least squares, visibility-weighted); intrinsics from the clip's
   params or a field-of-view default. Depth is smoothed harder than the rest (``root_cutoff_hz``). Then each
   landmark keeps its depth and moves onto the camera ray through its image position (the image landmarks
   are more precise than the model's metric 3D), and the skeleton is fitted again to these points.
6. Up: the floor plane through the foot points at rest when the feet cover enough ground and it agrees with
   the trunk within 25 degrees, else the median trunk direction. World z = up, x = the camera's viewing
   direction on the floor.
7. Foot contacts: a foot whose image points nearly stop (speed at the subject's depth, immune to depth noise)
   and that is not clearly above the other foot. The contact feet set the floor height frame by frame (the
   root's height then follows the standing leg rather than the noisy depth); the horizontal path is a
   complementary filter of leg odometry (fast) and the camera path (slow); each contact foot is then locked
   (still, on the floor, at its run's median position) by two-bone leg IK.
8. Joint rotations (relative to a T-pose facing +x, the foot sloping down to the toe base) from segment
   frames built on the fitted skeleton.

The floor offset, facing +x at frame 0 and the final foot contacts are then set by
:func:`pipeline.motion.process.process` (via :func:`pipeline.motion.read_clip`), like every other reader.
Per-frame confidence (mean landmark visibility, 0 on interpolated frames) is kept in
``source["frame_confidence"]``, at the video's frame rate (``source["video"]["fps"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.io import sha256_file
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, HumanMotion
from pipeline.motion.video_fit import (
    CONFIDENCE_POWER,
    L_EAR,
    NOSE,
    R_EAR,
    USED,
    bone_lengths,
    canonical_points,
    fit_skeleton,
    floor_from_contacts,
    lowpass,
    onto_rays,
    overlap_hidden,
    plant_feet,
    root_translation,
    segment_rotations,
    segments,
    smooth_image,
    snap_feet,
    unit,
    up_direction,
)
from pipeline.motion.video_pose import Landmarks, detect_landmarks


@dataclass(frozen=True)
class VideoOptions:
    """Clip params for video input (unknown keys are rejected).

    Attributes:
        subject_height: the subject's standing height, metres (sets the scale, hence the depth of the root).
        fx, fy, cx, cy: pinhole intrinsics in pixels; default from ``hfov_deg`` and the image centre.
        hfov_deg: horizontal field of view when ``fx`` is not given (60 degrees: a typical phone camera).
        fps: frame rate of an image folder (videos carry their own).
        max_gap_s: longest hole (no person) that is interpolated; longer ones split the clip.
        min_segment_s: shortest usable segment.
        segment: which segment to keep (index into the segments, by time); default the longest.
        cutoff_hz: low-pass cut-off for the landmarks; ``root_cutoff_hz`` for depths (the root's and the
            metric landmarks').
    """

    subject_height: float | None = None
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    hfov_deg: float = 60.0
    fps: float = 30.0
    max_gap_s: float = 0.5
    min_segment_s: float = 0.5
    segment: int | None = None
    cutoff_hz: float = 6.0
    root_cutoff_hz: float = 2.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, origin: str | Path) -> VideoOptions:
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InputError(origin, f"unknown video params {unknown}; known: {sorted(known)}")
        try:
            opts = cls(
                **{  # type: ignore[arg-type]
                    k: (None if v is None else (int(v) if k == "segment" else float(v)))
                    for k, v in params.items()
                }
            )
        except (TypeError, ValueError) as e:
            raise InputError(origin, f"video params must be numbers: {e}") from None
        if opts.subject_height is not None and not 0.5 < opts.subject_height < 2.6:
            raise InputError(origin, f"subject_height {opts.subject_height} m is not a human height")
        return opts

    def intrinsics(self, width: int, height: int) -> tuple[float, float, float, float]:
        fx = self.fx if self.fx is not None else 0.5 * width / np.tan(np.radians(self.hfov_deg) / 2.0)
        fy = self.fy if self.fy is not None else fx
        cx = self.cx if self.cx is not None else width / 2.0
        cy = self.cy if self.cy is not None else height / 2.0
        return float(fx), float(fy), float(cx), float(cy)


def drop_jumps(lm: Landmarks, window: int = 5) -> Landmarks:
    """Treat as holes the frames whose hip centre is far (over the person's size in the image) from the
    running median of its neighbours: a jump to another person or a wrong detection."""
    idx = np.flatnonzero(lm.found)
    if idx.size < window:
        return lm
    hips = lm.image_px[idx][:, 23:25].mean(axis=1)  # (N, 2)
    size = np.linalg.norm(lm.image_px[idx][:, 11:13].mean(axis=1) - hips, axis=-1)  # trunk length, pixels
    half = window // 2
    pad = np.pad(hips, ((half, half), (0, 0)), mode="edge")
    med = np.median(np.stack([pad[i : i + len(hips)] for i in range(window)]), axis=0)
    bad = np.linalg.norm(hips - med, axis=-1) > 2.0 * np.median(size)
    if not bad.any():
        return lm
    found = lm.found.copy()
    found[idx[bad]] = False
    return replace(lm, found=found)


def fill_holes(x: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linear interpolation over axis 0 of the frames where ``found`` is False (ends held)."""
    t = np.arange(x.shape[0])
    flat = x.reshape(x.shape[0], -1)
    good = np.flatnonzero(found)
    out = np.empty_like(flat)
    for c in range(flat.shape[1]):
        out[:, c] = np.interp(t, good, flat[good, c])
    return out.reshape(x.shape)


def motion_from_landmarks(lm: Landmarks, opts: VideoOptions, origin: str | Path) -> tuple[HumanMotion, dict]:
    """Landmarks of a whole clip -> unprocessed canonical HumanMotion (z up, metres) and extraction notes."""
    fps = lm.fps
    lm = drop_jumps(lm)
    n_found = int(lm.found.sum())
    if n_found == 0:
        raise InputError(origin, f"no person found in any of the {lm.num_frames} frames")
    segs = segments(lm.found, round(opts.max_gap_s * fps))
    if opts.segment is not None:
        if not 0 <= opts.segment < len(segs):
            raise InputError(
                origin, f"segment {opts.segment} does not exist: the clip has {len(segs)} segments {segs}"
            )
        keep = segs[opts.segment]
    else:
        keep = max(segs, key=lambda s: s[1] - s[0])
    min_len = max(3, round(opts.min_segment_s * fps))
    if keep[1] - keep[0] < min_len:
        raise InputError(
            origin,
            f"the person is seen in runs of at most {keep[1] - keep[0]} frames (segments {segs}); "
            f"at least {min_len} frames ({opts.min_segment_s} s) without a gap over {opts.max_gap_s} s "
            "are needed",
        )
    sl = slice(*keep)
    found = lm.found[sl]
    vis = lm.visibility[sl]
    image = fill_holes(lm.image_px[sl], found)
    vis = overlap_hidden(image, np.where(found[:, None], vis, 0.0), fps)
    world = lowpass(fill_holes(lm.world_c[sl], found), fps, opts.cutoff_hz)
    # the model's depths are its least certain coordinates: smoothed harder, by confidence like the image
    world[..., 2:] = smooth_image(fill_holes(lm.world_c[sl, :, 2:], found), vis, fps, opts.root_cutoff_hz)
    image = smooth_image(image, vis, fps, opts.cutoff_hz)
    confidence = vis[:, list(USED)].mean(axis=1)

    obs = canonical_points(world)
    lengths = bone_lengths(obs, confidence)
    from pipeline.motion.process import height_from_legs

    leg = sum(lengths[CANONICAL_JOINTS.index(f"left_{b}")] for b in ("knee", "ankle"))  # sides are averaged
    if leg <= 0:
        raise InputError(origin, "degenerate landmarks: the legs have zero length")
    height = opts.subject_height or height_from_legs(leg)
    scale = height / height_from_legs(leg)

    intr = opts.intrinsics(lm.width, lm.height)
    w = np.clip(vis, 0.0, 1.0) ** CONFIDENCE_POWER
    w[~found] = 0.0
    t = root_translation(world * scale, image, w + 1e-6, intr)
    t[~found] = np.nan
    t = fill_holes(np.nan_to_num(t), found)
    t[:, :2] = lowpass(t[:, :2], fps, opts.cutoff_hz)
    t[:, 2] = lowpass(t[:, 2], fps, opts.root_cutoff_hz)
    # the image landmarks are sharper than the model's metric 3D: each keeps its depth and moves onto its ray
    fitted_c = fit_skeleton(canonical_points(onto_rays(world * scale, image, t, intr)), lengths * scale)
    pos_c = fitted_c + t[:, None, :]

    up, up_from = up_direction(pos_c, fps)
    view = np.array([0.0, 0.0, 1.0])
    x_w = unit(view - (view @ up) * up)
    r_wc = np.stack([x_w, np.cross(up, x_w), up])  # rows: world axes in camera coordinates
    pos_w = pos_c @ r_wc.T
    pos_w, contacts = floor_from_contacts(pos_w, image, t[:, 2], intr[0], fps, height)
    pos_w = snap_feet(plant_feet(pos_w, contacts, fps), contacts, fps, height)
    face_c = world[:, NOSE] - (world[:, L_EAR] + world[:, R_EAR]) / 2
    quat_w = segment_rotations(pos_w, face_c @ r_wc.T)

    notes = {
        "frames_decoded": int(lm.decoded.sum()),
        "frames_expected": int(lm.expected_frames),
        "frames_with_person": n_found,
        "segments": [list(s) for s in segs],
        "kept": list(keep),
        "interpolated_frames": int((~found).sum()),
        "partial": bool(
            keep != (0, lm.num_frames)
            or (~found).any()
            or not lm.decoded.all()
            or lm.expected_frames > lm.num_frames
        ),
        "intrinsics": dict(zip(("fx", "fy", "cx", "cy"), intr, strict=True)),
        "image_size": [lm.width, lm.height],
        "fps": float(fps),
        "up_from": up_from,
        "scale": float(scale),
    }
    motion = HumanMotion(
        fps=float(fps),
        joint_names=CANONICAL_JOINTS,
        parents=np.array(CANONICAL_PARENTS, dtype=np.int64),
        pos_w=pos_w,
        quat_w=quat_w,
        contacts=contacts,
        subject_height=float(height),
        source={"frame_confidence": [round(float(c), 3) for c in confidence]},
    )
    return motion, notes


def _folder_sha256(folder: Path) -> str:
    """Hash of an image folder: its image file names and contents, in name order."""
    import hashlib

    from pipeline.motion.video_pose import IMAGE_SUFFIXES

    h = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        h.update(f.name.encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def read_video(
    path: str | Path, params: Mapping[str, Any] | None = None, *, progress: bool | None = None
) -> HumanMotion:
    """Read a video file or an image folder into an unprocessed canonical :class:`HumanMotion`.

    Args:
        path: a video (.mp4, .avi, ...) or a folder of images.
        params: :class:`VideoOptions` fields (subject_height, intrinsics or hfov_deg, fps of a folder, ...).
        progress: show a progress bar (default: when stderr is a terminal).
    """
    import sys

    path = Path(path)
    if progress is None:
        progress = sys.stderr.isatty()
    opts = VideoOptions.from_params(params, path)
    lm = detect_landmarks(path, fps=opts.fps, progress=progress)
    motion, notes = motion_from_landmarks(lm, opts, path)
    source = {
        "format": "video",
        "file": path.name,
        "sha256": sha256_file(path) if path.is_file() else _folder_sha256(path),
        "licence": "unknown",
        "pose_model": "mediapipe-0.10.21 pose (BlazePose GHUM full, model_complexity=1)",
        "video": notes,
        **motion.source,
    }
    return motion.replace(source=source)
