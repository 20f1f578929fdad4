"""Human motion ingest: one entry point, :func:`read_clip`, for every format.

Readers are registered in :data:`FORMATS` (name -> reader) and :data:`SUFFIXES` (file suffix -> name). A reader
takes ``(path, ReadOptions)`` and returns a canonical, unprocessed :class:`HumanMotion` (17 keypoints, z-up
metres, rotations relative to the rest pose); :func:`read_clip` then resamples, aligns the floor, turns the
subject to face +x and detects contacts (:mod:`pipeline.motion.process`). Add a format with
:func:`register_format`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import InputError
from pipeline.motion.human import CANONICAL_JOINTS, HumanMotion

if TYPE_CHECKING:
    from pipeline.motion.process import ContactConfig


@dataclass(frozen=True)
class ReadOptions:
    """Reader options; each reader uses the ones that apply to its format."""

    joint_map: str | Path | dict[str, str] | None = None
    unit: str | float | None = None
    body_model: str | Path | None = None
    subject_height: float | None = None
    video: Mapping[str, Any] | None = None


Reader = Callable[[Path, ReadOptions], HumanMotion]
FORMATS: dict[str, Reader] = {}
SUFFIXES: dict[str, str] = {}


def register_format(name: str, suffixes: tuple[str, ...], reader: Reader) -> None:
    """Register ``reader`` for format ``name`` and the given file suffixes (lower case, with the dot)."""
    FORMATS[name] = reader
    for s in suffixes:
        SUFFIXES[s] = name


def _bvh(path: Path, o: ReadOptions) -> HumanMotion:
    from pipeline.motion.bvh import read_bvh

    return read_bvh(path, joint_map=o.joint_map, unit=o.unit)


def _deepmimic(path: Path, o: ReadOptions) -> HumanMotion:
    from pipeline.motion.deepmimic import read_deepmimic

    return read_deepmimic(path)


def _amass(path: Path, o: ReadOptions) -> HumanMotion:
    from pipeline.motion.amass import read_amass

    return read_amass(path, body_model=o.body_model)


def _human(path: Path, o: ReadOptions) -> HumanMotion:
    return HumanMotion.load(path)


def _video(path: Path, o: ReadOptions) -> HumanMotion:
    from pipeline.motion.video import read_video

    params = dict(o.video or {})
    if o.subject_height is not None:
        params.setdefault("subject_height", o.subject_height)
    return read_video(path, params)


def _holosoma(path: Path, o: ReadOptions) -> HumanMotion:
    from pipeline.motion.holosoma import read_holosoma

    return read_holosoma(path)


register_format("bvh", (".bvh",), _bvh)
register_format("deepmimic", (".txt", ".json"), _deepmimic)
register_format("amass", (), _amass)
register_format("human", (), _human)
register_format("holosoma", (".holosoma", ".pt"), _holosoma)  # scene beside it: holosoma.read_scene
register_format("video", (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"), _video)


def _npz_format(path: Path) -> str:
    """HumanMotion npz (has a 'format' entry naming it) or an AMASS / SMPL-X npz."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" in z.files and str(z["format"]) == "mimic.HumanMotion":
                return "human"
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(path, f"not a readable npz file ({e})") from None
    return "amass"


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir():
        return "video"  # a folder of images
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz_format(path)
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise InputError(
        path,
        f"unknown clip format '{suffix}': known suffixes {sorted([*SUFFIXES, '.npz'])}; or pass a format",
    )


def read_clip(
    path: str | Path,
    *,
    fmt: str | None = None,
    fps: float | None = None,
    joint_map: str | Path | dict[str, str] | None = None,
    unit: str | float | None = None,
    body_model: str | Path | None = None,
    subject_height: float | None = None,
    video: Mapping[str, Any] | None = None,
    contacts: ContactConfig | None = None,
) -> HumanMotion:
    """Read any supported clip into a processed, canonical :class:`HumanMotion`.

    Args:
        path: the clip (.bvh, DeepMimic .txt, AMASS .npz, or an already processed HumanMotion .npz).
        fmt: format name (a key of :data:`FORMATS`); default from the suffix / content.
        fps: target frame rate; default: the clip's own.
        joint_map: BVH joint-name map (YAML file or dict canonical -> source joint) for unknown skeletons.
        unit: BVH unit override ('m', 'cm', 'mm', 'inch', 'cmu' or metres per unit); default: detected.
        body_model: folder with SMPL-X model files (AMASS input).
        subject_height: the subject's standing height in metres; positions are scaled uniformly to match it.
            Video input uses it to size the skeleton, hence the distance to the camera.
        video: video options (camera intrinsics fx/fy/cx/cy or hfov_deg, fps of an image folder, gap
            handling): :class:`pipeline.motion.video.VideoOptions`.
        contacts: foot-contact thresholds (default :class:`pipeline.motion.process.ContactConfig`).
    """
    from pipeline.motion.process import process, resample

    path = Path(path)
    if not (path.is_file() or path.is_dir()):
        raise InputError(path, "file not found")
    name = fmt or detect_format(path)
    if name not in FORMATS:
        raise InputError(path, f"unknown format '{name}'; known: {sorted(FORMATS)}")
    options = ReadOptions(
        joint_map=joint_map, unit=unit, body_model=body_model, subject_height=subject_height, video=video
    )
    motion = FORMATS[name](path, options)
    if motion.joint_names != CANONICAL_JOINTS:
        raise InputError(path, "reader did not produce the canonical keypoints")
    if name == "human" and motion.source.get("processed"):
        if fps is not None:
            motion = resample(motion, fps)
        return motion
    return process(motion, fps=fps, subject_height=subject_height, contacts=contacts)


__all__ = [
    "FORMATS",
    "SUFFIXES",
    "HumanMotion",
    "ReadOptions",
    "detect_format",
    "read_clip",
    "register_format",
]
