"""Throughput of the full tracking task against raw physics of the same model, timestep, decimation, threads.

usage: python benchmarks/sim_throughput.py [--envs N] [--steps 150] [--rounds 3] [--ppo-iters 3]
(--envs defaults to params.yaml train.num_envs)

Prints one JSON line: env_steps_per_s (policy steps of the task: physics + observations + rewards +
terminations + resets, random actions), raw_physics_env_steps_per_s (mujoco.batch.Batch stepping the same
model with the same actions' targets, no task code), their ratio (rounds interleaved, medians), the share of
wall time spent in PPO updates over a few rsl-rl-lib iterations, peak memory and the machine's load average
(the machine may be shared: compare the ratio, measured interleaved, rather than absolute rates). The clip is
data/robot/walk.npz when present, else a synthetic arm-swing motion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.robot.motion import RobotMotion  # noqa: E402
from pipeline.robot.spec import load_robot  # noqa: E402
from pipeline.sim.backend import CpuBatch  # noqa: E402
from pipeline.sim.config import from_dict  # noqa: E402
from pipeline.sim.task import TrackingEnv  # noqa: E402
from pipeline.stage import params  # noqa: E402


def _motion() -> tuple[RobotMotion, str]:
    path = ROOT / "data" / "robot" / "walk.npz"
    if path.exists():
        m = RobotMotion.load(path, robot="g1")
        return dataclasses.replace(m, source={**m.source, "cyclic": True}), "walk"
    robot = load_robot("g1")
    t = 200
    q = np.zeros((t, 7 + robot.num_joints))
    q[:, 2], q[:, 3], q[:, 7:] = 0.76, 1.0, robot.default_pos
    q[:, 7 + 15] += 0.4 * np.sin(np.arange(t) / 50 * 2 * np.pi)
    return RobotMotion.from_qpos("g1", q, 50.0), "synthetic"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--envs", type=int, default=0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ppo-iters", type=int, default=3)
    args = ap.parse_args()
    raw_cfg = params("train", path=ROOT / "params.yaml")
    cfg = from_dict(raw_cfg)
    args.envs = args.envs or cfg.num_envs
    cfg = dataclasses.replace(cfg, num_envs=args.envs)
    motion, clip = _motion()
    env = TrackingEnv(cfg, [motion], [clip])
    env.reset()
    # raw physics: a second batch of the same model with the same per-env parameters, stepped from exactly
    # the task's states (copied in untimed before every policy step) with one native call of `decimation`
    # substeps and no task code
    raw = CpuBatch(env.backend.model, args.envs, nthread=cfg.sim.nthread)
    rng = np.random.default_rng(0)
    dec = cfg.sim.decimation
    actions = rng.normal(0.0, 0.3, (args.rounds, args.steps, args.envs, env.num_actions))
    task_rates, raw_rates = [], []
    for r in range(args.rounds):
        for name in env.randomizer._fields:
            raw.param(name)[:] = env.backend.param(name)
        t_task = t_raw = 0.0
        for a in actions[r]:
            raw.qpos[:], raw.qvel[:] = env.backend.qpos, env.backend.qvel
            raw.ctrl[:] = env.default + env.action_scale * a
            t0 = time.perf_counter()
            raw._batch.step(nstep=dec)
            t1 = time.perf_counter()
            env.step(a)
            t2 = time.perf_counter()
            t_raw += t1 - t0
            t_task += t2 - t1
        raw_rates.append(args.steps * args.envs / t_raw)
        task_rates.append(args.steps * args.envs / t_task)
    task, phys = float(np.median(task_rates)), float(np.median(raw_rates))

    from pipeline.learn.teacher import train

    pcfg = dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, minutes=0.0, env_steps=1))
    pcfg = dataclasses.replace(
        pcfg,
        budget=dataclasses.replace(
            pcfg.budget, env_steps=args.ppo_iters * args.envs * cfg.ppo.num_steps_per_env
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = train(pcfg, [motion], [clip], Path(tmp), progress=False)
    print(
        json.dumps(
            {
                "benchmark": "sim_throughput",
                "clip": clip,
                "num_envs": args.envs,
                "nthread": cfg.sim.nthread,
                "timestep": cfg.sim.timestep,
                "decimation": dec,
                "env_steps_per_s": round(task, 1),
                "raw_physics_env_steps_per_s": round(phys, 1),
                "ratio": round(task / phys, 3),
                "ppo_update_share": round(result.update_share, 3),
                "ppo_iterations": result.iterations,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
