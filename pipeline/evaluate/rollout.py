"""Roll out a policy under one evaluation condition and score every env's first episode.

A policy is ``(groups, act)``: ``act`` maps its observation groups, concatenated ((E, D) numpy; ``actor``,
plus ``anchor_pos`` with train.actor_anchor_pos, for the teacher; ``student`` for the history-fed student) to
raw actions (E, N). Every policy sees the same episodes for a given ``seed``: the same clips, start frames,
randomization draws and observation noise (the task's generator is seeded and does not depend on the actions
until pushes and resets diverge).

Episodes: each clip is replayed from its first frame by ``episodes_per_clip`` envs, for at least
``min_episode_s`` of reference (cyclic clips loop; a non-cyclic clip ends at its last frame); the train stage
scores its teacher with this too (pipeline/learn/teacher.py ``evaluate_teacher``). Metrics per clip and
overall (means over episodes):

- ``success_rate``: share of episodes reaching their end without a termination;
- ``mpkpe_mm``: mean global position error of the tracked bodies, mm (over the steps the episode lived);
- ``mpkpe_local_mm``: the same against the reference moved onto the robot's anchor in x, y and heading (as
  the body rewards see it): the posture error without the drift of the whole body;
- ``heading_err_deg``, ``drift_along_mm``, ``drift_across_mm``: where the global error comes from: the
  anchor's heading error, deg, and its planar position error along the reference's heading (pace) and across
  it, mm (absolute, means over the steps the episode lived);
- ``joint_err_rad``: mean absolute joint position error, rad;
- ``torque_nm``: mean absolute actuator torque over joints and physics steps, N m;
- ``action_rate``: action smoothness, mean over joints of (a_t - a_{t-1})^2 (raw action units; lower is
  smoother; a_{-1} is the task's start value, the action that servoes the first reference frame);
- ``survival_s``: how long episodes lived, s (MPKPE grows as a policy loses the reference, so compare MPKPE
  between policies that survive alike);
- ``episodes`` and ``episode_s`` (the longest episode's length: shorter clips give shorter episodes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluate.conditions import Physics, make_backend
from pipeline.learn.history_env import HistoryEnv
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot
from pipeline.sim.config import TrainConfig
from pipeline.sim.task import TrackingEnv

METRICS = (
    "success_rate",
    "mpkpe_mm",
    "mpkpe_local_mm",
    "heading_err_deg",
    "drift_along_mm",
    "drift_across_mm",
    "joint_err_rad",
    "torque_nm",
    "action_rate",
    "survival_s",
)


@dataclass(frozen=True)
class PolicySpec:
    groups: tuple[str, ...]  # observation groups the policy reads, concatenated in this order
    act: Callable[[np.ndarray], np.ndarray]


@dataclass
class Rollout:
    summary: dict[str, Any]  # {"overall": {metric: v}, "clips": {name: {metric: v}}}
    mpkpe_curve_mm: np.ndarray  # (T,) mean over the first clip's envs alive at step t (nan when none)
    alive_curve: np.ndarray  # (T,) share of the first clip's envs still alive
    qpos: np.ndarray  # (T+1, nq) the first env's trajectory (for the video)
    dt: float


def rollout(
    policy: PolicySpec,
    cfg: TrainConfig,
    physics: Physics,
    motions: Sequence[RobotMotion],
    names: Sequence[str],
    *,
    history: int,
    seed: int,
    episodes_per_clip: int,
    min_episode_s: float,
) -> Rollout:
    cfg = dataclasses.replace(cfg, seed=seed)
    robot = load_robot(cfg.robot)
    e = episodes_per_clip * len(motions)
    backend = make_backend(cfg, robot, physics, e)
    task = TrackingEnv(cfg, motions, names, num_envs=e, backend=backend)
    backend.strength = task.randomizer.params.motor_strength  # live view, rewritten at resets
    env = HistoryEnv(task, history)
    ref = task.ref
    clips = np.repeat(np.arange(len(motions)), episodes_per_clip)
    want = int(np.ceil(min_episode_s / task.dt))
    steps = np.where(ref.clip_cyclic[clips], want, ref.clip_len[clips] - 1)
    task.set_eval(clips, steps)
    obs = env.reset()
    alive = np.ones(e, bool)
    success = np.zeros(e, bool)
    sums = {
        k: np.zeros(e) for k in ("mpkpe", "local", "heading", "along", "across", "jerr", "torque", "rate")
    }
    lived = np.zeros(e)
    first = clips == 0
    curve, alive_curve, qpos = [], [], [backend.qpos[0].copy()]
    for _ in range(int(steps.max())):
        x = np.concatenate([obs[g] for g in policy.groups], axis=1)
        actions = np.asarray(policy.act(x), dtype=np.float64)
        rate = np.mean((actions - task.last_action) ** 2, axis=1)  # the task keeps the previous action
        torque0, sub0 = backend.torque_abs_sum.copy(), backend.substeps
        obs, _, term, time_out, info = env.step(actions.copy())  # the task may write into what it keeps
        torque = (backend.torque_abs_sum - torque0) / max(backend.substeps - sub0, 1)
        for k, v in (
            ("mpkpe", info["mpkpe_m"]),
            ("local", info["mpkpe_local_m"]),
            ("heading", info["heading_err"]),
            ("along", info["drift_along_m"]),
            ("across", info["drift_across_m"]),
            ("jerr", info["joint_err"]),
            ("torque", torque),
            ("rate", rate),
        ):
            sums[k] += np.where(alive, v, 0.0)
        lived += alive
        m = alive & first
        curve.append(1000.0 * info["mpkpe_m"][m].mean() if m.any() else np.nan)
        alive_curve.append(m.sum() / max(first.sum(), 1))
        if alive[0] and not (term[0] or time_out[0]):
            qpos.append(backend.qpos[0].copy())
        success |= alive & time_out
        alive &= ~(term | time_out)
        if not alive.any():
            break
    n = np.maximum(lived, 1)
    per_env = {
        "success_rate": success.astype(float),
        "mpkpe_mm": 1000.0 * sums["mpkpe"] / n,
        "mpkpe_local_mm": 1000.0 * sums["local"] / n,
        "heading_err_deg": np.degrees(sums["heading"] / n),
        "drift_along_mm": 1000.0 * sums["along"] / n,
        "drift_across_mm": 1000.0 * sums["across"] / n,
        "joint_err_rad": sums["jerr"] / n,
        "torque_nm": sums["torque"] / n,
        "action_rate": sums["rate"] / n,
        "survival_s": lived * task.dt,
    }

    def summary(mask: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {k: float(per_env[k][mask].mean()) for k in METRICS}
        out["episodes"] = int(mask.sum())
        out["episode_s"] = float(steps[mask].max() * task.dt)
        return out

    return Rollout(
        summary={
            "overall": summary(np.ones(e, bool)),
            "clips": {name: summary(clips == i) for i, name in enumerate(names)},
        },
        mpkpe_curve_mm=np.array(curve),
        alive_curve=np.array(alive_curve),
        qpos=np.array(qpos),
        dt=task.dt,
    )
