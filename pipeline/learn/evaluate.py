"""Tracking evaluation of any policy on the task, per clip and overall (reused by the evaluate stage).

Each clip is replayed from its first frame by ``episodes_per_clip`` envs (different randomization draws and
observation noise). An episode lasts at least ``min_episode_s`` of reference: cyclic clips loop with the root
advancing (pipeline/sim/reference.py); a non-cyclic clip ends at its last frame (shorter clips give shorter
episodes, reported as ``episode_s``). Metrics:

- ``success_rate``: share of episodes that reach their end without a termination;
- ``mpkpe_mm``: mean global position error of the tracked bodies (robot.yaml ``bodies.tracked``), mm, averaged
  over the steps each episode lived;
- ``joint_err_rad``: mean absolute joint position error, rad;
- ``episodes``: how many episodes were evaluated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipeline.robot.motion import RobotMotion
from pipeline.sim.config import RandomizationConfig, Switch, TrainConfig
from pipeline.sim.task import TrackingEnv

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def nominal(cfg: TrainConfig) -> TrainConfig:
    """The same config with every randomization switched off (nominal model, no noise, no pushes)."""
    rnd = cfg.randomization
    off = {
        f.name: dataclasses.replace(getattr(rnd, f.name), enabled=False)
        for f in dataclasses.fields(RandomizationConfig)
        if isinstance(getattr(rnd, f.name), Switch)
    }
    return dataclasses.replace(cfg, randomization=dataclasses.replace(rnd, **off))


def evaluate(
    policy: Policy,
    cfg: TrainConfig,
    motions: Sequence[RobotMotion],
    names: Sequence[str],
    *,
    randomized: bool | None = None,
    episodes_per_clip: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Run ``policy`` (actor obs dict -> actions (E, N)) and return {"overall": {...}, "clips": {name: {...}}}."""
    randomized = cfg.eval.randomized if randomized is None else randomized
    k = episodes_per_clip or cfg.eval.episodes_per_clip
    ecfg = cfg if randomized else nominal(cfg)
    ecfg = dataclasses.replace(ecfg, seed=cfg.seed + 10_000 if seed is None else seed)
    env = TrackingEnv(ecfg, motions, names, num_envs=k * len(motions))
    ref = env.ref
    clips = np.repeat(np.arange(len(motions)), k)
    want = int(np.ceil(cfg.eval.min_episode_s / env.dt))
    steps = np.where(ref.clip_cyclic[clips], want, ref.clip_len[clips] - 1)
    env.set_eval(clips, steps)
    obs = env.reset()
    e = env.num_envs
    alive = np.ones(e, bool)
    success = np.zeros(e, bool)
    mpkpe = np.zeros(e)
    jerr = np.zeros(e)
    lived = np.zeros(e)
    for _ in range(int(steps.max())):
        obs, _, term, time_out, info = env.step(policy(obs))
        mpkpe += np.where(alive, info["mpkpe_m"], 0.0)
        jerr += np.where(alive, info["joint_err"], 0.0)
        lived += alive
        success |= alive & time_out
        alive &= ~(term | time_out)
        if not alive.any():
            break
    per_env = {
        "success": success.astype(float),
        "mpkpe_mm": 1000.0 * mpkpe / np.maximum(lived, 1),
        "joint_err_rad": jerr / np.maximum(lived, 1),
    }

    def summary(mask: np.ndarray) -> dict[str, Any]:
        return {
            "success_rate": float(per_env["success"][mask].mean()),
            "mpkpe_mm": float(per_env["mpkpe_mm"][mask].mean()),
            "joint_err_rad": float(per_env["joint_err_rad"][mask].mean()),
            "episodes": int(mask.sum()),
            "episode_s": float(steps[mask].max() * env.dt),
        }

    return {
        "randomized": bool(randomized),
        "overall": summary(np.ones(e, bool)),
        "clips": {name: summary(clips == i) for i, name in enumerate(names)},
    }
