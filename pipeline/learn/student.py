"""The student policy: what it reads, its networks, and its files in ``models/student/``.

Input (the deploy contract, ``deploy.json`` ``observation.history``, ``history_order: oldest_first``): the last
H frames of the deployable actor observation (:func:`pipeline.deploy.observation.actor_observation`: reference
joint positions/velocities and anchor orientation error = the reference command; base angular velocity,
projected gravity, joint positions/velocities, last action = proprioception), oldest first, flattened to
``(H * D,)``. After a reset the buffer is filled with the first frame (as ``pipeline.deploy.policy.ObsHistory``).
Nothing privileged (base linear velocity, body positions, contact forces, randomized parameters) enters.

Loading for export (``pipeline/learn/export.py``)::

    student = load_student("models/student")          # StudentBundle
    export_bundle(student.actor, student.normalizer, motion, out, history=student.history,
                  control_dt=student.control_dt)

``student.actor`` maps the *raw* flat history ``(B, H*D)`` to raw actions ``(B, N)`` (joint targets =
default + action_scale * action): the observation normalization (frozen statistics) and, when the teacher is
residual (``train.ppo.residual``), the reference feed-forward ``(ref_joint_pos of the newest frame - default) /
action_scale`` are inside it, so ``student.normalizer`` is always ``None`` (export_bundle then uses Identity).

File ``models/student/student.pt`` (``torch.load(weights_only=True)``): a dict with ``format``, ``version``,
``method`` ("distill" | "rma"), ``history``, ``obs_size`` (D), ``num_actions``, ``control_dt``, ``arch``
(network sizes) and the ``state_dict`` of :class:`StudentPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import InputError

FORMAT = "mimic.student"
VERSION = 1
FILE = "student.pt"


class HistoryBuffer:
    """The last H frames per env, oldest first; envs being reset are filled with their first frame.

    ``push(frame (E, D), reset (E,) bool)`` -> ``(E, H*D)`` float32.
    """

    def __init__(self, num_envs: int, history: int, size: int) -> None:
        if history < 1:
            raise ValueError("history must be >= 1")
        self.history, self.size = history, size
        self.buf = np.zeros((num_envs, history, size), dtype=np.float32)
        self.empty = np.ones(num_envs, dtype=bool)

    def push(self, frame: np.ndarray, reset: np.ndarray | None = None) -> np.ndarray:
        fill = self.empty if reset is None else (self.empty | np.asarray(reset, dtype=bool))
        self.buf[:, :-1] = self.buf[:, 1:]
        self.buf[:, -1] = frame
        self.buf[fill] = np.asarray(frame, dtype=np.float32)[fill, None, :]
        self.empty[:] = False
        return self.flat()

    def flat(self) -> np.ndarray:
        return self.buf.reshape(self.buf.shape[0], -1).copy()


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ELU) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Frozen observation normalization ``(x - mean) / (std + eps)`` (the statistics of rsl-rl's
    ``EmpiricalNormalization`` at the end of training; exported as plain arithmetic)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, size: int, eps: float = 1e-2) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (self.std + self.eps)


class FeedForward(nn.Module):
    """``(x[:, start : start + N] - offset) / scale``: the reference joint positions of one frame as the
    action that servoes them (zero when ``arch`` has no ``ff_offset``: a non-residual teacher)."""

    offset: torch.Tensor
    scale: torch.Tensor

    def __init__(self, arch: dict[str, Any], start: int, num_actions: int) -> None:
        super().__init__()
        self.enabled = "ff_offset" in arch
        self.start, self.n = int(start), num_actions
        self.register_buffer("offset", torch.tensor(arch.get("ff_offset", [0.0] * num_actions)))
        self.register_buffer("scale", torch.tensor(arch.get("ff_scale", [1.0] * num_actions)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return torch.zeros(x.shape[0], self.n, dtype=x.dtype)
        return (x[:, self.start : self.start + self.n] - self.offset) / self.scale


class HistoryActor(nn.Module):
    """Default student: ``mlp(normalize(history)) + feed_forward(newest frame)``, on the raw flat history."""

    def __init__(self, history: int, obs_size: int, num_actions: int, arch: dict[str, Any]) -> None:
        super().__init__()
        d = history * obs_size
        self.norm = Normalizer(d)
        self.mlp = mlp([d, *arch["hidden"], num_actions])
        self.ff = FeedForward(arch, (history - 1) * obs_size, num_actions)

    def forward(self, hist: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(hist)) + self.ff(hist)


class AdaptationActor(nn.Module):
    """RMA student: an adaptation module infers the latent from the history; the teacher's base policy acts
    on the current frame (the last of the history) and that latent. Takes the raw (unnormalized) history."""

    def __init__(self, history: int, obs_size: int, latent: int, num_actions: int, arch: dict[str, Any]):
        super().__init__()
        self.history, self.obs_size = history, obs_size
        self.hist_norm = Normalizer(history * obs_size)
        self.adapt = mlp([history * obs_size, *arch["adapt_hidden"], latent])
        self.obs_norm = Normalizer(obs_size)
        self.base = mlp([obs_size + latent, *arch["actor_hidden"], num_actions])
        self.ff = FeedForward(arch, 0, num_actions)

    def latent(self, hist: torch.Tensor) -> torch.Tensor:
        return self.adapt(self.hist_norm(hist))

    def forward(self, hist: torch.Tensor) -> torch.Tensor:
        now = hist[:, -self.obs_size :]
        return self.base(torch.cat([self.obs_norm(now), self.latent(hist)], dim=-1)) + self.ff(now)


class StudentPolicy(nn.Module):
    """The student as one module on the raw flat history (normalization and feed-forward inside)."""

    def __init__(
        self, method: str, history: int, obs_size: int, num_actions: int, arch: dict[str, Any]
    ) -> None:
        super().__init__()
        self.method, self.history, self.obs_size = method, history, obs_size
        self.actor: nn.Module
        if method == "distill":
            self.actor = HistoryActor(history, obs_size, num_actions, arch)
        elif method == "rma":
            self.actor = AdaptationActor(history, obs_size, int(arch["latent"]), num_actions, arch)
        else:
            raise ValueError(f"unknown student method '{method}'")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)


@dataclass(frozen=True)
class StudentBundle:
    policy: StudentPolicy
    method: str
    history: int
    obs_size: int
    num_actions: int
    control_dt: float
    meta: dict[str, Any]

    @property
    def actor(self) -> nn.Module:
        return self.policy.actor

    @property
    def normalizer(self) -> None:
        """Always None: the actor normalizes inside (the feed-forward needs the raw observation)."""
        return None

    def act(self, obs: np.ndarray) -> np.ndarray:
        """(B, H*D) numpy -> (B, N) actions, deterministic."""
        with torch.no_grad():
            return self.policy(torch.as_tensor(obs, dtype=torch.float32)).numpy().astype(np.float64)


def save_student(
    path: str | Path,
    policy: StudentPolicy,
    *,
    num_actions: int,
    control_dt: float,
    arch: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``path`` (a ``student.pt``) atomically."""
    from pipeline.io import atomic_path

    blob = {
        "format": FORMAT,
        "version": VERSION,
        "method": policy.method,
        "history": policy.history,
        "obs_size": policy.obs_size,
        "num_actions": int(num_actions),
        "control_dt": float(control_dt),
        "arch": {k: list(v) if isinstance(v, tuple | list) else v for k, v in arch.items()},
        "meta": dict(meta or {}),
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(blob, tmp)


def load_student(path: str | Path) -> StudentBundle:
    """Load ``models/student`` (the folder) or a ``student.pt`` file; InputError when it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    try:
        blob = torch.load(path, weights_only=True, map_location="cpu")
    except (OSError, RuntimeError, EOFError) as e:
        raise InputError(path, f"cannot read the student ({e}); run the distill stage") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(path, f"not a student file (format is not '{FORMAT}')")
    if blob.get("version") != VERSION:
        raise InputError(path, f"student file version {blob.get('version')}, this code reads {VERSION}")
    policy = StudentPolicy(
        blob["method"], int(blob["history"]), int(blob["obs_size"]), int(blob["num_actions"]), blob["arch"]
    )
    policy.load_state_dict(blob["state_dict"])
    policy.eval()
    return StudentBundle(
        policy=policy,
        method=blob["method"],
        history=int(blob["history"]),
        obs_size=int(blob["obs_size"]),
        num_actions=int(blob["num_actions"]),
        control_dt=float(blob["control_dt"]),
        meta=dict(blob.get("meta", {})),
    )
