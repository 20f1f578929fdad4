"""Robots: RobotSpec from robots/<name>/robot.yaml, MuJoCo and pinocchio models from one MJCF."""

from pipeline.robot.model import mujoco_model, pinocchio_model, qpos_mj_to_pin, qpos_pin_to_mj
from pipeline.robot.spec import RobotSpec, load_robot

__all__ = ["RobotSpec", "load_robot", "mujoco_model", "pinocchio_model", "qpos_mj_to_pin", "qpos_pin_to_mj"]
