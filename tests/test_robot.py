"""The G1 description: robot.yaml against the compiled model, PD gains, and pinocchio vs MuJoCo kinematics."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pinocchio as pin
import pytest

from pipeline.errors import InputError
from pipeline.robot import load_robot, mujoco_model, pinocchio_model, qpos_mj_to_pin, qpos_pin_to_mj
from pipeline.robot.model import joint_limits


@pytest.fixture(scope="module")
def g1():
    return load_robot("g1")


def test_joint_names_match_model_order(g1):
    model = mujoco_model("g1")
    assert g1.num_joints == 29
    assert model.nu == 29 and model.nq == 36
    hinges = tuple(model.joint(i).name for i in range(1, model.njnt))
    assert hinges == g1.joint_names
    for i in range(model.nu):
        assert model.actuator_trnid[i, 0] == i + 1  # actuator i drives hinge i, in joint order


def test_bodies_and_keypoint_bodies_exist(g1):
    model = mujoco_model("g1")
    names = {model.body(i).name for i in range(model.nbody)}
    for key in ("pelvis", "anchor", "torso", "head"):
        assert g1.bodies[key] in names
    for body in (*g1.feet, *g1.hands, *g1.bodies["tracked"]):
        assert body in names
    for kp in g1.keypoints:
        assert kp.body in names, kp.name


def test_pd_gains_follow_armature_derivation(g1):
    wn = 2 * math.pi * g1.natural_frequency_hz
    np.testing.assert_allclose(g1.kp, g1.armature * wn**2, rtol=1e-4)
    np.testing.assert_allclose(g1.kd, 2 * g1.damping_ratio * g1.armature * wn, rtol=1e-4)
    model = mujoco_model("g1")
    dof = model.jnt_dofadr[1:]
    np.testing.assert_allclose(model.dof_armature[dof], g1.armature)
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], g1.kp)
    np.testing.assert_allclose(-model.actuator_biasprm[:, 2], g1.kd)
    np.testing.assert_allclose(model.actuator_forcerange[:, 1], g1.effort_limit)


def test_default_pose_inside_limits(g1):
    lo, hi = joint_limits("g1")
    assert np.all(g1.default_pos >= lo) and np.all(g1.default_pos <= hi)


def test_pd_actuator_tracks_target_with_effort_limit(g1):
    """The position actuator applies kp*(target-q) - kd*qdot, clamped to the effort limit."""
    model = mujoco_model("g1")
    data = mujoco.MjData(model)
    data.qpos[2] = 1.0
    data.ctrl[:] = 0.05
    data.qvel[6:] = 0.1
    mujoco.mj_forward(model, data)
    expected = np.clip(g1.kp * 0.05 - g1.kd * 0.1, -g1.effort_limit, g1.effort_limit)
    np.testing.assert_allclose(data.actuator_force, expected, rtol=1e-9, atol=1e-9)
    data.ctrl[:] = 10.0
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(np.abs(data.actuator_force), g1.effort_limit)


def test_pinocchio_matches_mujoco_forward_kinematics(g1):
    model = mujoco_model("g1")
    data = mujoco.MjData(model)
    pmodel = pinocchio_model("g1")
    pdata = pmodel.createData()
    lo, hi = joint_limits("g1")
    rng = np.random.default_rng(0)
    names = [model.body(i).name for i in range(1, model.nbody)]
    frame_ids = [pmodel.getFrameId(n, pin.FrameType.BODY) for n in names]
    for _ in range(20):
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        qpos = np.concatenate([rng.uniform(-1, 1, 3), quat, rng.uniform(lo, hi)])
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        q = qpos_mj_to_pin(qpos)
        np.testing.assert_allclose(qpos_pin_to_mj(q), qpos)
        pin.framesForwardKinematics(pmodel, pdata, q)
        for body, fid in zip(range(1, model.nbody), frame_ids, strict=True):
            np.testing.assert_allclose(pdata.oMf[fid].translation, data.xpos[body], atol=1e-6)
            np.testing.assert_allclose(pdata.oMf[fid].rotation, data.xmat[body].reshape(3, 3), atol=1e-6)


def test_unknown_robot_is_a_clear_error():
    with pytest.raises(InputError, match=r"unknown robot.*known robots: g1"):
        load_robot("nao")
