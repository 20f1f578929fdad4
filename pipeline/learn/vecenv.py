"""rsl-rl-lib VecEnv adapter over :class:`pipeline.sim.task.TrackingEnv`.

Observations are a TensorDict with the groups ``actor`` (deployable, see pipeline/deploy/observation.py),
``anchor_pos`` and ``critic`` (privileged); the runner config maps ``obs_groups = {"actor": ["actor"],
"critic": ["critic"]}`` (``["actor", "anchor_pos"]`` with ``train.actor_anchor_pos``; distillation:
``{"student": ["student"], "teacher": [the teacher's groups]}``).
``extras["time_outs"]`` marks truncations for value bootstrapping; ``extras["log"]`` holds reward-term means.
Completed episodes are accumulated in :attr:`episode_stats` for the training log.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from pipeline.sim.symmetry import TaskMirror
from pipeline.sim.task import TrackingEnv


class TrackingVecEnv(VecEnv):
    def __init__(self, env: TrackingEnv, device: str = "cpu") -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.num_actions = env.num_actions
        self.max_episode_length = env.max_episode_steps
        self.device = device
        self.cfg = {"control_dt": env.dt, "num_envs": env.num_envs}
        self._obs = env.reset()
        self.episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long)
        self._return = np.zeros(self.num_envs)
        self.episode_stats: dict[str, list[float]] = {
            "return": [],
            "length_s": [],
            "terminated": [],
            "mpkpe_m": [],
        }
        self._mpkpe_sum = np.zeros(self.num_envs)

    @functools.cached_property
    def mirror(self) -> TaskMirror:
        """The task's left-right mirror (rsl-rl symmetry augmentation reads it)."""
        return TaskMirror.of(self.env)

    def _td(self, obs: dict[str, np.ndarray]) -> TensorDict:
        return TensorDict(
            {k: torch.from_numpy(v) for k, v in obs.items()}, batch_size=[self.num_envs], device=self.device
        )

    def get_observations(self) -> TensorDict:
        return self._td(self._obs)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        a = actions.detach().cpu().numpy().astype(np.float64)
        obs, rew, term, time_out, info = self.env.step(a)
        self._obs = obs
        done = term | time_out
        self._return += rew
        self._mpkpe_sum += info["mpkpe_m"]
        ids = np.flatnonzero(done)
        if ids.size:
            steps = info["episode_steps"][ids]
            st = self.episode_stats
            st["return"].extend(self._return[ids].tolist())
            st["length_s"].extend((steps * self.env.dt).tolist())
            st["terminated"].extend(term[ids].astype(float).tolist())
            st["mpkpe_m"].extend((self._mpkpe_sum[ids] / np.maximum(steps, 1)).tolist())
            self._return[ids] = 0.0
            self._mpkpe_sum[ids] = 0.0
        self.episode_length_buf = torch.from_numpy(self.env.steps.copy())
        extras = {
            "time_outs": torch.from_numpy(time_out.astype(np.float32)),
            "log": {"/" + k: float(v) for k, v in info.items() if k.startswith("reward/")},
        }
        return (
            self._td(obs),
            torch.from_numpy(rew.astype(np.float32)),
            torch.from_numpy(done.astype(np.float32)),
            extras,
        )

    def pop_episode_stats(self) -> dict[str, float]:
        """Means over the episodes completed since the last call (empty if none)."""
        out = {k: float(np.mean(v)) for k, v in self.episode_stats.items() if v}
        if self.episode_stats["return"]:
            out["episodes"] = float(len(self.episode_stats["return"]))
        for v in self.episode_stats.values():
            v.clear()
        return out
