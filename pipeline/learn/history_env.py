"""The tracking task with the student's observation groups added (a wrapper, the task is unchanged).

``HistoryEnv(env, history)`` behaves like :class:`pipeline.sim.task.TrackingEnv` (same ``reset``/``step``,
other attributes delegated) and adds to the observation dict:

- ``student`` (E, H*D): the last H ``actor`` frames, oldest first (:class:`pipeline.learn.student.HistoryBuffer`;
  a reset env's history is its first frame repeated, exactly as the deploy runtime's ``ObsHistory``);
- ``priv`` (E, P): the randomized parameters the critic sees (``EpisodeParams.critic_vector``), the RMA
  teacher's privileged encoder input.

``actor`` (the teacher's input) and ``critic`` pass through. Wrapped by :class:`pipeline.learn.vecenv.
TrackingVecEnv` it is an rsl-rl VecEnv with these four groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.learn.student import HistoryBuffer
from pipeline.sim.task import TrackingEnv


class HistoryEnv:
    def __init__(self, env: TrackingEnv, history: int) -> None:
        self.env = env
        self.history = history
        self.obs_size = sum(t.size for t in env.actor_layout)
        self.buffer = HistoryBuffer(env.num_envs, history, self.obs_size)
        self.obs: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["env"], name)

    def _extend(self, obs: dict[str, np.ndarray], reset: np.ndarray | None) -> dict[str, np.ndarray]:
        out = dict(obs)
        out["student"] = self.buffer.push(obs["actor"], reset)
        p = self.env.randomizer.params
        out["priv"] = p.critic_vector(float(self.env.backend.model.opt.timestep)).astype(np.float32)
        self.obs = out
        return out

    def reset(self) -> dict[str, np.ndarray]:
        obs = self.env.reset()
        return self._extend(obs, np.ones(self.env.num_envs, dtype=bool))

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        obs, rew, term, time_out, info = self.env.step(actions)
        return self._extend(obs, term | time_out), rew, term, time_out, info
