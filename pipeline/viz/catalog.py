"""The clips the pipeline has built (data/human, data/robot) and how viewer arguments name them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.motion.human import HumanMotion
from pipeline.robot.motion import RobotMotion

NAME_PREFIXES = ("retarget/", "robot/", "extract/", "human/", "data/robot/", "data/human/")


@dataclass(frozen=True)
class ClipEntry:
    """One viewable clip: a robot motion, a human motion, or both (same clip name).

    Attributes:
        name: clip name (file stem).
        human: HumanMotion file or None.   robot: RobotMotion file or None.
        quality: the robot motion's quality report (``<robot>.quality.json``) or None.
    """

    name: str
    human: Path | None = None
    robot: Path | None = None
    quality: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """'pass', 'fail', 'no report' (robot motion without a report) or 'human only'."""
        if self.robot is None:
            return "human only"
        return quality_status(self.quality)

    @property
    def label(self) -> str:
        kinds = "+".join(k for k, p in (("human", self.human), ("robot", self.robot)) if p is not None)
        return f"{self.name} [{kinds}, {self.status}]"

    @property
    def scene(self) -> Path | None:
        """The scene file beside the human motion (``<clip>.scene.npz``), if there is one."""
        for base in (self.human, self.robot):
            if base is not None:
                p = base.with_name(f"{base.stem}.scene.npz")
                if p.exists():
                    return p
        return None


def quality_status(report: dict[str, Any] | None) -> str:
    """'pass' / 'fail' from a quality report's gate (``passed`` or ``gate: {passed}``), else a summary."""
    if report is None:
        return "no report"
    gate = report.get(
        "passed", report.get("gate", {}).get("passed") if isinstance(report.get("gate"), dict) else None
    )
    if isinstance(gate, bool):
        return "pass" if gate else "fail"
    # No gate recorded: fail on hard violations, which no threshold makes acceptable.
    hard = int(report.get("joint_limit_violations", 0) or 0) + int(report.get("self_collisions", 0) or 0)
    err = report.get("keypoint_err_mean_mm")
    if isinstance(err, float) and math.isnan(err):
        return "fail"
    return "fail" if hard else "pass"


def quality_path(robot_path: Path) -> Path:
    return robot_path.with_name(f"{robot_path.stem}.quality.json")


def read_quality(robot_path: Path) -> dict[str, Any] | None:
    p = quality_path(robot_path)
    if not p.exists():
        return None
    try:
        report = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(p, f"not a readable JSON quality report ({e})") from None
    if not isinstance(report, dict):
        raise InputError(p, "a quality report must be a JSON object")
    return report


def list_clips(data_dir: str | Path = "data") -> list[ClipEntry]:
    """Every clip with a ``<data>/human/<clip>.npz`` or ``<data>/robot/<clip>.npz``, sorted by name."""
    data_dir = Path(data_dir)
    names: dict[str, dict[str, Path]] = {}
    for kind in ("human", "robot"):
        folder = data_dir / kind
        if folder.is_dir():
            for p in sorted(folder.glob("*.npz")):
                if p.name.endswith(".scene.npz"):
                    continue
                names.setdefault(p.stem, {})[kind] = p
    out = []
    for name in sorted(names):
        robot = names[name].get("robot")
        out.append(
            ClipEntry(
                name=name,
                human=names[name].get("human"),
                robot=robot,
                quality=read_quality(robot) if robot is not None else None,
            )
        )
    return out


def file_format(path: Path) -> str:
    """The ``format`` recorded in a versioned npz (InputError if missing or unreadable)."""
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as d:
            return str(d["format"]) if "format" in d.files else "<none>"
    except (OSError, ValueError) as e:
        raise InputError(path, f"not a readable npz file ({e})") from None


def resolve(arg: str, data_dir: str | Path = "data") -> ClipEntry:
    """A viewer argument: a RobotMotion / HumanMotion file, or a built clip's name (``walk``, ``retarget/walk``)."""
    path = Path(arg)
    if path.suffix == ".npz" or path.exists():
        fmt = file_format(path)
        if fmt == "mimic.RobotMotion":
            return ClipEntry(name=path.stem, robot=path, quality=read_quality(path))
        if fmt == "mimic.HumanMotion":
            return ClipEntry(name=path.stem, human=path)
        raise InputError(path, f"expected a RobotMotion or HumanMotion file, found format '{fmt}'")
    name = arg
    for prefix in NAME_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    for entry in list_clips(data_dir):
        if entry.name == name:
            return entry
    built = ", ".join(e.name for e in list_clips(data_dir)) or "none"
    raise InputError(arg, f"no such file, and no built clip of that name under {data_dir}/ (built: {built})")


@dataclass(frozen=True)
class LoadedClip:
    entry: ClipEntry
    robot: RobotMotion | None
    human: HumanMotion | None


def load_clip(entry: ClipEntry) -> LoadedClip:
    """Read the clip's motions (InputError on a missing or malformed file)."""
    robot = RobotMotion.load(entry.robot) if entry.robot is not None else None
    human = HumanMotion.load(entry.human) if entry.human is not None else None
    return LoadedClip(entry=entry, robot=robot, human=human)
