"""Tiny problems for the distillation and evaluation tests: a synthetic clip, a small task config, a teacher."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import torch

from pipeline.robot.model import mujoco_model
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot
from pipeline.sim.config import TrainConfig, from_dict

TINY_TRAIN = {
    "num_envs": 4,
    "sim": {"nthread": 1},
    "ppo": {"actor_hidden": [32], "critic_hidden": [32], "num_steps_per_env": 8, "num_mini_batches": 2},
}
TINY_DISTILL = {"num_envs": 4, "hidden": [32], "num_steps_per_env": 8, "gradient_length": 4, "history": 3}


def tiny_train_config(**changes: object) -> TrainConfig:
    return from_dict({**TINY_TRAIN, **changes})


def swaying_motion(seconds: float = 2.0, fps: float = 50.0) -> RobotMotion:
    """The G1 standing in its default pose (feet on the floor) swinging one arm: a clip for smoke training."""
    robot = load_robot("g1")
    m = mujoco_model("g1")
    d = mujoco.MjData(m)
    t = np.arange(int(seconds * fps) + 1) / fps
    q = np.zeros((len(t), m.nq))
    q[:, 3] = 1.0
    q[:, 7:] = robot.default_pos
    d.qpos[:] = q[0]
    d.qpos[2] = 1.0
    mujoco.mj_kinematics(m, d)
    lowest = min(
        d.geom_xpos[i, 2] - m.geom_rbound[i]
        for i in range(m.ngeom)
        if m.geom_bodyid[i] > 0 and m.geom_contype[i]
    )
    q[:, 2] = 1.0 - lowest
    j = robot.joint_names.index("left_shoulder_pitch_joint")
    q[:, 7 + j] += 0.3 * np.sin(np.pi * t)
    return RobotMotion.from_qpos("g1", q, fps, source={"format": "synthetic", "cyclic": False})


def save_teacher(cfg: TrainConfig, motion: RobotMotion, path: Path) -> Path:
    """A randomly initialised rsl-rl teacher saved like the train stage's policy.pt."""
    from pipeline.learn.teacher import build_runner
    from pipeline.sim.task import TrackingEnv

    env = TrackingEnv(cfg, [motion], ["sway"])
    _, runner = build_runner(env, cfg)
    torch.save(runner.alg.save(), path)
    return path
