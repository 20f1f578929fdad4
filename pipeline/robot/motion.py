"""RobotMotion: a robot trajectory in the robot's joint order (DESIGN.md, data contracts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from pipeline.errors import InputError
from pipeline.geometry import angular_velocity, finite_difference
from pipeline.io import json_field, load_npz, require_finite, save_npz
from pipeline.robot.model import mujoco_model
from pipeline.robot.spec import load_robot

FORMAT = "mimic.RobotMotion"
VERSION = 1


@dataclass(frozen=True)
class RobotMotion:
    """A robot motion.

    Attributes:
        fps: frames per second.
        robot: robot name (robots/<robot>/robot.yaml).
        joint_names: (N,) in the robot's joint order.
        root_pos_w: (T, 3) root (pelvis) position, metres.
        root_quat_w: (T, 4) root orientation, wxyz.
        dof_pos: (T, N) joint positions, rad.   dof_vel: (T, N) rad/s.
        root_lin_vel_w, root_ang_vel_w: (T, 3) world-frame root velocities.
        body_names: (B,) every body of the model but the world.
        body_pos_w: (T, B, 3).   body_quat_w: (T, B, 4) wxyz.
        contacts: (T, 2) the human's foot contacts (left, right) carried along.
        keypoint_names: (K,) human keypoints the retargeter tracked.
        keypoint_pos_w: (T, K, 3) those keypoints after scaling to the robot, metres.
        source: provenance (the human motion's sha256, method, parameters).
    """

    fps: float
    robot: str
    joint_names: tuple[str, ...]
    root_pos_w: np.ndarray
    root_quat_w: np.ndarray
    dof_pos: np.ndarray
    dof_vel: np.ndarray
    root_lin_vel_w: np.ndarray
    root_ang_vel_w: np.ndarray
    body_names: tuple[str, ...]
    body_pos_w: np.ndarray
    body_quat_w: np.ndarray
    contacts: np.ndarray
    keypoint_names: tuple[str, ...] = ()
    keypoint_pos_w: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3)))
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.dof_pos.shape[0])

    @property
    def qpos(self) -> np.ndarray:
        """(T, 7 + N) MuJoCo qpos."""
        return np.concatenate([self.root_pos_w, self.root_quat_w, self.dof_pos], axis=1)

    def body_index(self, name: str) -> int:
        return self.body_names.index(name)

    @classmethod
    def from_qpos(
        cls,
        robot: str,
        qpos: np.ndarray,
        fps: float,
        *,
        contacts: np.ndarray | None = None,
        keypoint_names: tuple[str, ...] = (),
        keypoint_pos_w: np.ndarray | None = None,
        source: dict[str, Any] | None = None,
    ) -> RobotMotion:
        """Complete a (T, 7+N) qpos track with velocities and forward kinematics of every body."""
        spec = load_robot(robot)
        model = mujoco_model(robot)
        qpos = np.asarray(qpos, dtype=np.float64)
        t = qpos.shape[0]
        data = mujoco.MjData(model)
        body_pos = np.empty((t, model.nbody - 1, 3))
        body_quat = np.empty((t, model.nbody - 1, 4))
        for i in range(t):
            data.qpos[:] = qpos[i]
            mujoco.mj_kinematics(model, data)
            body_pos[i] = data.xpos[1:]
            body_quat[i] = data.xquat[1:]
        quat = qpos[:, 3:7] / np.linalg.norm(qpos[:, 3:7], axis=1, keepdims=True)
        return cls(
            fps=float(fps),
            robot=robot,
            joint_names=spec.joint_names,
            root_pos_w=qpos[:, :3],
            root_quat_w=quat,
            dof_pos=qpos[:, 7:],
            dof_vel=finite_difference(qpos[:, 7:], fps),
            root_lin_vel_w=finite_difference(qpos[:, :3], fps),
            root_ang_vel_w=angular_velocity(quat, fps),
            body_names=tuple(model.body(i).name for i in range(1, model.nbody)),
            body_pos_w=body_pos,
            body_quat_w=body_quat,
            contacts=np.zeros((t, 2), bool) if contacts is None else np.asarray(contacts, bool),
            keypoint_names=tuple(keypoint_names),
            keypoint_pos_w=np.zeros((t, 0, 3)) if keypoint_pos_w is None else np.asarray(keypoint_pos_w),
            source=dict(source or {}),
        )

    def validate(self, origin: str | Path | None = None) -> RobotMotion:
        where = origin if origin is not None else "<robot motion>"
        t, n = self.dof_pos.shape
        if t == 0:
            raise InputError(where, "the motion has zero frames")
        if n != len(self.joint_names):
            raise InputError(where, f"dof_pos has {n} joints but {len(self.joint_names)} joint names")
        for name in ("root_pos_w", "root_quat_w", "dof_pos", "dof_vel", "body_pos_w", "body_quat_w"):
            arr = getattr(self, name)
            if arr.shape[0] != t:
                raise InputError(where, f"{name} has {arr.shape[0]} frames, dof_pos has {t}")
            require_finite(where, name, arr)
        return self

    def save(self, path: str | Path) -> None:
        self.validate()
        save_npz(
            path,
            FORMAT,
            VERSION,
            {
                "fps": np.float64(self.fps),
                "robot": np.array(self.robot),
                "joint_names": np.array(self.joint_names),
                "root_pos_w": self.root_pos_w,
                "root_quat_w": self.root_quat_w,
                "dof_pos": self.dof_pos,
                "dof_vel": self.dof_vel,
                "root_lin_vel_w": self.root_lin_vel_w,
                "root_ang_vel_w": self.root_ang_vel_w,
                "body_names": np.array(self.body_names),
                "body_pos_w": self.body_pos_w,
                "body_quat_w": self.body_quat_w,
                "contacts": self.contacts.astype(bool),
                "keypoint_names": np.array(self.keypoint_names, dtype=str),
                "keypoint_pos_w": self.keypoint_pos_w,
                "source": self.source,
            },
        )

    @classmethod
    def load(cls, path: str | Path, *, robot: str | None = None) -> RobotMotion:
        """Read a RobotMotion; with ``robot``, refuse a motion made for another robot."""
        d = load_npz(path, FORMAT, VERSION)
        motion = cls(
            fps=float(d["fps"]),
            robot=str(d["robot"]),
            joint_names=tuple(str(n) for n in d["joint_names"]),
            root_pos_w=d["root_pos_w"],
            root_quat_w=d["root_quat_w"],
            dof_pos=d["dof_pos"],
            dof_vel=d["dof_vel"],
            root_lin_vel_w=d["root_lin_vel_w"],
            root_ang_vel_w=d["root_ang_vel_w"],
            body_names=tuple(str(n) for n in d["body_names"]),
            body_pos_w=d["body_pos_w"],
            body_quat_w=d["body_quat_w"],
            contacts=d["contacts"],
            keypoint_names=tuple(str(n) for n in d["keypoint_names"]),
            keypoint_pos_w=d["keypoint_pos_w"],
            source=json_field(d, "source"),
        ).validate(path)
        if robot is not None and motion.robot != robot:
            raise InputError(path, f"this motion is for robot '{motion.robot}', not '{robot}'")
        if robot is not None and motion.joint_names != load_robot(robot).joint_names:
            raise InputError(path, f"joint names differ from robots/{robot}/robot.yaml")
        return motion
