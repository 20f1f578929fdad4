"""The deploy contract (``deploy.json``) and the bundle it describes (DESIGN.md, data contracts).

A bundle is a folder::

    policy.onnx    the actor, normalizer included: input "obs" (1, H*D) float32 -> output "actions" (1, N)
    deploy.json    this contract
    motion.npz     the reference motion at the control rate (format mimic.DeployMotion)

Joint targets are ``default_joint_pos + action_scale * action``; the observation is the concatenation of the
last H frames (oldest first) of the layout in ``observation.terms``. The runtime refuses a bundle whose hashes
do not match its files, or whose robot, joint order, joint count or gains differ from the robot it drives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.io import load_npz, sha256_file

FORMAT = "mimic.DeployContract"
VERSION = 1
MOTION_FORMAT = "mimic.DeployMotion"
MOTION_VERSION = 1
GAIN_RTOL = 1e-6

_KEYS = {
    "format", "format_version", "robot", "joint_names", "default_joint_pos", "kp", "kd", "action_scale",
    "effort_limit", "joint_pos_lower", "joint_pos_upper", "control_dt", "anchor_body", "imu_body", "anchor_chain",
    "observation", "policy", "motion", "versions", "source",
}  # fmt: skip


class ContractMismatch(InputError):
    """The bundle was made for another robot (or another configuration of it)."""


@dataclass(frozen=True)
class ObsTerm:
    name: str
    size: int
    scale: float = 1.0


@dataclass(frozen=True)
class DeployContract:
    """deploy.json. Arrays are in joint order, shape (N,)."""

    robot: str
    joint_names: tuple[str, ...]
    default_joint_pos: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    action_scale: np.ndarray
    effort_limit: np.ndarray
    joint_pos_lower: np.ndarray
    joint_pos_upper: np.ndarray
    control_dt: float
    anchor_body: str
    imu_body: str
    anchor_chain: dict[str, Any]
    obs_terms: tuple[ObsTerm, ...]
    history: int
    policy: dict[str, Any]
    motion: dict[str, Any]
    versions: dict[str, Any]
    source: dict[str, Any]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def obs_size(self) -> int:
        """D, one frame of observations."""
        return sum(t.size for t in self.obs_terms)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": VERSION,
            "robot": self.robot,
            "joint_names": list(self.joint_names),
            "default_joint_pos": self.default_joint_pos.tolist(),
            "kp": self.kp.tolist(),
            "kd": self.kd.tolist(),
            "action_scale": self.action_scale.tolist(),
            "effort_limit": self.effort_limit.tolist(),
            "joint_pos_lower": self.joint_pos_lower.tolist(),
            "joint_pos_upper": self.joint_pos_upper.tolist(),
            "control_dt": self.control_dt,
            "anchor_body": self.anchor_body,
            "imu_body": self.imu_body,
            "anchor_chain": self.anchor_chain,
            "observation": {
                "terms": [{"name": t.name, "size": t.size, "scale": t.scale} for t in self.obs_terms],
                "size": self.obs_size,
                "history": self.history,
                "history_order": "oldest_first",
            },
            "policy": self.policy,
            "motion": self.motion,
            "versions": self.versions,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], where: str | Path) -> DeployContract:
        if raw.get("format") != FORMAT:
            raise InputError(
                where, f"not a deploy contract (format '{raw.get('format')}', expected {FORMAT})"
            )
        if raw.get("format_version") != VERSION:
            raise InputError(where, f"deploy contract version {raw.get('format_version')} is not {VERSION}")
        unknown = set(raw) - _KEYS
        missing = _KEYS - set(raw)
        if unknown:
            raise InputError(where, f"unknown keys {sorted(unknown)}")
        if missing:
            raise InputError(where, f"missing keys {sorted(missing)}")
        n = len(raw["joint_names"])

        def arr(key: str) -> np.ndarray:
            a = np.asarray(raw[key], dtype=np.float64)
            if a.shape != (n,) or not np.isfinite(a).all():
                raise InputError(where, f"'{key}' must be {n} finite numbers (one per joint)")
            return a

        obs = raw["observation"]
        terms = tuple(
            ObsTerm(str(t["name"]), int(t["size"]), float(t.get("scale", 1.0))) for t in obs["terms"]
        )
        contract = cls(
            robot=str(raw["robot"]),
            joint_names=tuple(str(j) for j in raw["joint_names"]),
            default_joint_pos=arr("default_joint_pos"),
            kp=arr("kp"),
            kd=arr("kd"),
            action_scale=arr("action_scale"),
            effort_limit=arr("effort_limit"),
            joint_pos_lower=arr("joint_pos_lower"),
            joint_pos_upper=arr("joint_pos_upper"),
            control_dt=float(raw["control_dt"]),
            anchor_body=str(raw["anchor_body"]),
            imu_body=str(raw["imu_body"]),
            anchor_chain=dict(raw["anchor_chain"]),
            obs_terms=terms,
            history=int(obs["history"]),
            policy=dict(raw["policy"]),
            motion=dict(raw["motion"]),
            versions=dict(raw["versions"]),
            source=dict(raw["source"]),
        )
        if int(obs.get("size", contract.obs_size)) != contract.obs_size:
            raise InputError(
                where, f"observation size {obs['size']} != sum of term sizes {contract.obs_size}"
            )
        if contract.history < 1 or not 0.001 <= contract.control_dt <= 0.1:
            raise InputError(where, "observation history must be >= 1 and control_dt within [0.001, 0.1] s")
        return contract


@dataclass(frozen=True)
class ReferenceMotion:
    """The reference at the control rate: frame k is the target at control step k.

    joint_pos, joint_vel: (T, N).  anchor_pos_w: (T, 3).  anchor_quat_w: (T, 4) wxyz.
    body_names: (B,) tracked bodies.  body_pos_w: (T, B, 3) (for tracking error, not fed to the policy).
    """

    fps: float
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    anchor_pos_w: np.ndarray
    anchor_quat_w: np.ndarray
    body_names: tuple[str, ...]
    body_pos_w: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.joint_pos.shape[0])

    def arrays(self) -> dict[str, Any]:
        return {
            "fps": np.float64(self.fps),
            "joint_pos": self.joint_pos,
            "joint_vel": self.joint_vel,
            "anchor_pos_w": self.anchor_pos_w,
            "anchor_quat_w": self.anchor_quat_w,
            "body_names": np.array(self.body_names),
            "body_pos_w": self.body_pos_w,
        }

    @classmethod
    def load(cls, path: str | Path) -> ReferenceMotion:
        d = load_npz(path, MOTION_FORMAT, MOTION_VERSION)
        m = cls(
            fps=float(d["fps"]),
            joint_pos=d["joint_pos"],
            joint_vel=d["joint_vel"],
            anchor_pos_w=d["anchor_pos_w"],
            anchor_quat_w=d["anchor_quat_w"],
            body_names=tuple(str(b) for b in d["body_names"]),
            body_pos_w=d["body_pos_w"],
        )
        for key in ("joint_pos", "joint_vel", "anchor_pos_w", "anchor_quat_w", "body_pos_w"):
            a = getattr(m, key)
            if a.shape[0] != m.num_frames or not np.isfinite(a).all():
                raise InputError(path, f"'{key}' has the wrong frame count or non-finite values")
        return m


@dataclass(frozen=True)
class Bundle:
    root: Path
    contract: DeployContract
    motion: ReferenceMotion

    @property
    def policy_path(self) -> Path:
        return self.root / str(self.contract.policy["file"])


def load_bundle(root: str | Path) -> Bundle:
    """Read and verify a bundle folder: contract fields, file hashes, motion shape against the contract."""
    root = Path(root)
    path = root / "deploy.json"
    if not path.is_file():
        raise InputError(root, "not a deploy bundle (no deploy.json); build one with `dvc repro export`")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON ({e})") from None
    contract = DeployContract.from_json(raw, path)
    for part in ("policy", "motion"):
        f = root / str(contract.__dict__[part]["file"])
        if not f.is_file():
            raise InputError(f, f"the {part} file named in deploy.json is missing")
        if sha256_file(f) != contract.__dict__[part]["sha256"]:
            raise InputError(f, f"sha256 differs from deploy.json: the {part} file was changed after export")
    motion = ReferenceMotion.load(root / str(contract.motion["file"]))
    if motion.joint_pos.shape[1] != contract.num_joints:
        raise InputError(
            root / "motion.npz", f"{motion.joint_pos.shape[1]} joints, contract has {contract.num_joints}"
        )
    if abs(motion.fps * contract.control_dt - 1.0) > 1e-6:
        raise InputError(
            root / "motion.npz", f"motion at {motion.fps} fps, control rate is {1 / contract.control_dt}"
        )
    return Bundle(root=root, contract=contract, motion=motion)


def check_robot(
    contract: DeployContract,
    *,
    robot: str,
    joint_names: tuple[str, ...],
    kp: np.ndarray,
    kd: np.ndarray,
    where: str | Path = "deploy.json",
) -> None:
    """Refuse a contract made for another robot: name, joint count and order, PD gains."""
    problems = []
    if contract.robot != robot:
        problems.append(f"robot is '{contract.robot}', connected robot is '{robot}'")
    if len(contract.joint_names) != len(joint_names):
        problems.append(f"{len(contract.joint_names)} joints, connected robot has {len(joint_names)}")
    elif contract.joint_names != tuple(joint_names):
        i = next(i for i, (a, b) in enumerate(zip(contract.joint_names, joint_names, strict=True)) if a != b)
        problems.append(
            f"joint order differs at index {i}: '{contract.joint_names[i]}' vs '{joint_names[i]}'"
        )
    else:
        for name, mine, theirs in (("kp", contract.kp, kp), ("kd", contract.kd, kd)):
            bad = ~np.isclose(mine, theirs, rtol=GAIN_RTOL, atol=1e-9)
            if bad.any():
                i = int(np.argmax(bad))
                problems.append(f"{name} of {joint_names[i]} is {mine[i]:g}, the robot uses {theirs[i]:g}")
    if problems:
        raise ContractMismatch(
            where, "bundle does not match the robot: " + "; ".join(problems) + " (refusing to run)"
        )
