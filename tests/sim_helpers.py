"""Synthetic robot motions for the simulation and training tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot


def swing_motion(
    frames: int = 100,
    fps: float = 50.0,
    *,
    walk_speed: float = 0.0,
    cyclic: bool = False,
    yaw_rate: float = 0.0,
) -> RobotMotion:
    """The default pose with a swinging shoulder, optionally translating/turning (cyclic: source says so)."""
    robot = load_robot("g1")
    t = np.arange(frames) / fps
    q = np.zeros((frames, 7 + robot.num_joints))
    q[:, 0] = walk_speed * t
    q[:, 2] = 0.76
    yaw = yaw_rate * t
    q[:, 3], q[:, 6] = np.cos(yaw / 2), np.sin(yaw / 2)
    q[:, 7:] = robot.default_pos
    q[:, 7 + 15] += 0.4 * np.sin(2 * np.pi * t / t[-1])
    m = RobotMotion.from_qpos("g1", q, fps)
    return dataclasses.replace(m, source={"cyclic": cyclic}) if cyclic else m
