"""MuJoCo and pinocchio models of a robot, both built from the same MJCF.

The MuJoCo model gets what the MJCF leaves to code: joint armature, position actuators with the PD gains and
effort limits of robot.yaml, a floor, and foot friction/condim as the tracking literature sets them.
"""

from __future__ import annotations

from functools import cache

import mujoco
import numpy as np

from pipeline.errors import InputError
from pipeline.robot.spec import RobotSpec, load_robot

FOOT_FRICTION = 0.6


def build_spec(robot: RobotSpec, *, floor: bool = True, actuators: bool = True) -> mujoco.MjSpec:
    """An editable MjSpec of ``robot``: armature and PD actuators from robot.yaml, optionally a floor."""
    spec = mujoco.MjSpec.from_file(str(robot.mjcf_path))
    joints = {j.name: j for j in spec.joints}
    for i, name in enumerate(robot.joint_names):
        if name not in joints:
            raise InputError(robot.mjcf_path, f"joint '{name}' from robot.yaml is not in the model")
        joints[name].armature = float(robot.armature[i])
        if actuators:
            act = spec.add_actuator()
            act.name = name.removesuffix("_joint")
            act.target = name
            act.trntype = mujoco.mjtTrn.mjTRN_JOINT
            # Position servo: force = kp*(target - q) - kd*qdot, clamped to the effort limit.
            act.gainprm[0] = float(robot.kp[i])
            act.biasprm[:3] = [0.0, -float(robot.kp[i]), -float(robot.kd[i])]
            act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
            act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = [-float(robot.effort_limit[i]), float(robot.effort_limit[i])]
            act.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
    for g in spec.geoms:
        if g.name.endswith("_collision") and "_foot" in g.name:
            g.condim = 3
            g.priority = 1
            g.friction[0] = FOOT_FRICTION
        elif g.name.endswith("_collision"):
            g.condim = 1
    if floor:
        spec.worldbody.add_geom(
            name="floor",
            type=mujoco.mjtGeom.mjGEOM_PLANE,
            size=[0, 0, 0.05],
            rgba=[0.5, 0.55, 0.6, 1],
        )
        spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    return spec


@cache
def mujoco_model(name: str, *, floor: bool = True, actuators: bool = True) -> mujoco.MjModel:
    """The compiled MuJoCo model of robot ``name`` (cached; copy it before mutating)."""
    robot = load_robot(name)
    model = build_spec(robot, floor=floor, actuators=actuators).compile()
    check_joint_order(robot, model)
    return model


def check_joint_order(robot: RobotSpec, model: mujoco.MjModel) -> None:
    """robot.yaml's joint order must be the model's hinge order (qpos[7:])."""
    hinge = [
        model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] != mujoco.mjtJoint.mjJNT_FREE
    ]
    if tuple(hinge) != robot.joint_names:
        raise InputError(robot.mjcf_path, "joint order in robot.yaml differs from the model's")


def body_ids(model: mujoco.MjModel, names: list[str] | tuple[str, ...]) -> np.ndarray:
    ids = []
    for n in names:
        i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
        if i < 0:
            raise InputError(n, "no such body in the robot model")
        ids.append(i)
    return np.array(ids, dtype=np.int64)


def pinocchio_model(name: str):  # -> pinocchio.Model
    """The pinocchio model of robot ``name`` with a free-flyer root (nq = 7 + N, quaternion xyzw)."""
    return _pinocchio_model(name).copy()


@cache
def _pinocchio_model(name: str):
    import pinocchio as pin

    robot = load_robot(name)
    model = pin.buildModelFromMJCF(str(robot.mjcf_path))
    names = tuple(model.names[2:])  # universe, root free joint, then hinges
    if names != robot.joint_names:
        raise InputError(robot.mjcf_path, f"pinocchio joint order {names[:3]}... differs from robot.yaml")
    return model


def qpos_mj_to_pin(qpos: np.ndarray) -> np.ndarray:
    """MuJoCo qpos (…, 7+N) with root quaternion wxyz -> pinocchio q with xyzw."""
    q = np.array(qpos, dtype=np.float64, copy=True)
    q[..., 3:7] = q[..., [4, 5, 6, 3]]
    return q


def qpos_pin_to_mj(q: np.ndarray) -> np.ndarray:
    out = np.array(q, dtype=np.float64, copy=True)
    out[..., 3:7] = out[..., [6, 3, 4, 5]]
    return out


def joint_limits(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) hinge limits in joint order, radians."""
    model = mujoco_model(name)
    rng = model.jnt_range[1:]
    return rng[:, 0].copy(), rng[:, 1].copy()
