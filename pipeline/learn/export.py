"""Write a deploy bundle (pipeline/deploy/contract.py) from any actor module and its observation normalizer.

The ONNX graph is ``actor(normalizer(obs))`` as one file (no external data); export fails unless onnxruntime
reproduces torch within ``tolerance`` on a batch of observations. The reference motion is resampled to the
control rate exactly as the training task does (pipeline.sim.reference), looped when the clip is cyclic.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.deploy.contract import MOTION_FORMAT, MOTION_VERSION, DeployContract, ObsTerm, ReferenceMotion
from pipeline.deploy.observation import actor_layout, anchor_chain_from_model
from pipeline.errors import InputError
from pipeline.io import save_npz, sha256_file
from pipeline.robot.model import joint_limits, mujoco_model
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot

TOLERANCE = 1e-5


class _Policy(torch.nn.Module):
    def __init__(self, actor: torch.nn.Module, normalizer: torch.nn.Module | None) -> None:
        super().__init__()
        self.actor = actor
        self.normalizer = normalizer if normalizer is not None else torch.nn.Identity()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.normalizer(obs))


def reference_at_rate(
    motion: RobotMotion, control_dt: float, anchor_body: str, *, seconds: float | None = None
) -> ReferenceMotion:
    """The reference the training task sees (pipeline.sim.reference.MotionReference), frame k at k * control_dt.

    A non-cyclic clip gives its own length; a cyclic one (``source.cyclic``) is looped with its root advancing,
    as in training, for ``seconds`` (default: one cycle).
    """
    from pipeline.sim.reference import MAX_CYCLES, MotionReference

    robot = load_robot(motion.robot)
    ref = MotionReference(
        [motion], [str(motion.source.get("clip", "clip"))], control_dt, robot, motion.body_names
    )
    length = int(ref.clip_len[0])
    frames = length
    if ref.clip_cyclic[0] and seconds is not None:
        frames = min(round(seconds / control_dt) + 1, (length - 1) * (MAX_CYCLES - 1) + 1)
    at = ref.at(np.zeros(frames, np.int64), np.arange(frames))
    tracked = tuple(robot.bodies["tracked"])
    anchor = motion.body_index(anchor_body)
    quat = at["body_quat_w"][:, anchor]
    return ReferenceMotion(
        fps=1.0 / control_dt,
        joint_pos=at["joint_pos"],
        joint_vel=at["joint_vel"],
        anchor_pos_w=at["body_pos_w"][:, anchor],
        anchor_quat_w=quat * np.where(quat[:, :1] < 0, -1.0, 1.0),
        body_names=tracked,
        body_pos_w=at["body_pos_w"][:, [motion.body_index(b) for b in tracked]],
    )


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("mimic", "torch", "onnx", "onnxruntime", "mujoco", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def export_onnx(module: torch.nn.Module, obs_size: int, path: Path) -> None:
    module = module.eval()
    example = torch.zeros(1, obs_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # the TorchScript exporter gives one file, no dynamo
        torch.onnx.export(
            module, (example,), str(path), input_names=["obs"], output_names=["actions"],
            dynamo=False, external_data=False, opset_version=17,
        )  # fmt: skip


def check_onnx(module: torch.nn.Module, path: Path, obs_size: int, *, seed: int = 0, n: int = 256) -> float:
    """Max |onnxruntime - torch| over ``n`` observations (unit normal and 3x wider); raises above TOLERANCE."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, obs_size, generator=g) * torch.linspace(1.0, 3.0, n)[:, None]
    with torch.no_grad():
        ref = module.eval()(obs).numpy()
    got = np.concatenate([sess.run(None, {"obs": obs[i : i + 1].numpy()})[0] for i in range(n)])
    same_nan = np.array_equal(np.isnan(got), np.isnan(ref))
    err = float(np.nanmax(np.abs(got - ref))) if same_nan and not np.isnan(ref).all() else 0.0
    if not same_nan or not err <= TOLERANCE:
        raise InputError(path, f"onnxruntime differs from torch by {err:.2e} (> {TOLERANCE:g}); not exported")
    return err


def export_bundle(
    actor: torch.nn.Module,
    normalizer: torch.nn.Module | None,
    motion: RobotMotion,
    out_dir: str | Path,
    *,
    history: int = 1,
    control_dt: float = 0.02,
    seconds: float | None = None,
    source: dict[str, Any] | None = None,
) -> DeployContract:
    """Write ``out_dir``/{policy.onnx, deploy.json, motion.npz}; replaces the folder only on success."""
    robot = load_robot(motion.robot)
    n = robot.num_joints
    layout = actor_layout(n)
    obs_size = sum(t.size for t in layout)
    anchor, imu = robot.bodies["anchor"], robot.bodies["pelvis"]
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        module = _Policy(actor, normalizer).eval()
        export_onnx(module, obs_size * history, tmp / "policy.onnx")
        err = check_onnx(module, tmp / "policy.onnx", obs_size * history)
        ref = reference_at_rate(motion, control_dt, anchor, seconds=seconds)
        save_npz(tmp / "motion.npz", MOTION_FORMAT, MOTION_VERSION, ref.arrays())
        lower, upper = joint_limits(robot.name)
        chain = anchor_chain_from_model(mujoco_model(robot.name), imu, anchor)
        contract = DeployContract(
            robot=robot.name,
            joint_names=robot.joint_names,
            default_joint_pos=robot.default_pos,
            kp=robot.kp,
            kd=robot.kd,
            action_scale=robot.action_scale,
            effort_limit=robot.effort_limit,
            joint_pos_lower=lower,
            joint_pos_upper=upper,
            control_dt=float(control_dt),
            anchor_body=anchor,
            imu_body=imu,
            anchor_chain=chain.to_json(),
            obs_terms=tuple(ObsTerm(t.name, t.size, t.scale) for t in layout),
            history=int(history),
            policy={
                "file": "policy.onnx",
                "sha256": sha256_file(tmp / "policy.onnx"),
                "input": "obs",
                "output": "actions",
                "onnx_vs_torch_max_abs": err,
            },
            motion={
                "file": "motion.npz",
                "sha256": sha256_file(tmp / "motion.npz"),
                "fps": ref.fps,
                "frames": ref.num_frames,
                "source_sha256": motion.source.get("sha256", ""),
            },
            versions=_versions(),
            source=dict(source or {}),
        )
        (tmp / "deploy.json").write_text(json.dumps(contract.to_json(), indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return contract
