"""Shared helpers of the deploy tests: a synthetic reference motion and small policies exported to bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.deploy.observation import actor_layout
from pipeline.learn.export import export_bundle
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot

ROBOT = "g1"


def sway_motion(seconds: float = 2.0, fps: float = 50.0) -> RobotMotion:
    """The default pose with arms, waist and knees swaying (root fixed at the default height)."""
    spec = load_robot(ROBOT)
    t = np.arange(int(seconds * fps)) / fps
    q = np.tile(spec.default_pos, (len(t), 1))
    names = spec.joint_names
    for name, amp, freq in (("left_shoulder_pitch_joint", 0.4, 0.5), ("right_elbow_joint", 0.3, 0.7),
                            ("waist_yaw_joint", 0.2, 0.4), ("left_knee_joint", 0.1, 0.5)):  # fmt: skip
        q[:, names.index(name)] += amp * np.sin(2 * np.pi * freq * t)
    qpos = np.concatenate([np.tile([0.0, 0.0, spec.default_root_height, 1, 0, 0, 0], (len(t), 1)), q], 1)
    return RobotMotion.from_qpos(ROBOT, qpos, fps, source={"sha256": "synthetic-sway"})


def obs_size() -> int:
    return sum(t.size for t in actor_layout(load_robot(ROBOT).num_joints))


class TrackReference(torch.nn.Module):
    """Exact reference replay: action = (ref_joint_pos - default) / action_scale, read from the observation."""

    def __init__(self, history: int = 1) -> None:
        super().__init__()
        spec = load_robot(ROBOT)
        n, d = spec.num_joints, obs_size()
        self.lin = torch.nn.Linear(d * history, n, dtype=torch.float32)
        w = torch.zeros(n, d * history)
        last = (history - 1) * d  # the newest frame is last
        w[:, last : last + n] = torch.diag(torch.as_tensor(1.0 / spec.action_scale, dtype=torch.float32))
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.copy_(torch.as_tensor(-spec.default_pos / spec.action_scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class NanAfter(torch.nn.Module):
    """Outputs NaN once the last_action term is non-zero (i.e. from the second policy step on)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TrackReference()
        self.n = load_robot(ROBOT).num_joints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        moved = x[:, -self.n :].abs().sum(dim=1, keepdim=True) > 0
        return torch.where(moved, torch.full_like(out, float("nan")), out)


def mlp(history: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    n = load_robot(ROBOT).num_joints
    return torch.nn.Sequential(
        torch.nn.Linear(obs_size() * history, 256), torch.nn.ELU(), torch.nn.Linear(256, 128), torch.nn.ELU(),
        torch.nn.Linear(128, n),
    )  # fmt: skip


class Normalizer(torch.nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, size: int, seed: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("mean", torch.randn(size, generator=g) * 0.1)
        self.register_buffer("std", torch.rand(size, generator=g) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_bundle(out: Path, actor: torch.nn.Module | None = None, *, seconds: float = 2.0, history: int = 1,
                normalizer: torch.nn.Module | None = None) -> Path:  # fmt: skip
    export_bundle(actor if actor is not None else TrackReference(history), normalizer, sway_motion(seconds), out,
                  history=history, source={"test": True})  # fmt: skip
    return out
