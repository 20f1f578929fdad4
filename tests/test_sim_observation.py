"""The deployable actor observation (pipeline/deploy/observation.py) against MuJoCo's own kinematics."""

from __future__ import annotations

import mujoco
import numpy as np

from pipeline.deploy import observation as ob
from pipeline.robot.model import mujoco_model
from pipeline.robot.spec import load_robot


def _random_states(rng: np.random.Generator, model: mujoco.MjModel, b: int) -> np.ndarray:
    qpos = np.tile(model.qpos0, (b, 1))
    quat = rng.normal(size=(b, 4))
    qpos[:, 3:7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    lo, hi = model.jnt_range[1:, 0], model.jnt_range[1:, 1]
    qpos[:, 7:] = rng.uniform(lo, hi, size=(b, lo.size))
    return qpos


def test_anchor_chain_matches_forward_kinematics():
    model = mujoco_model("g1")
    spec = load_robot("g1")
    chain = ob.anchor_chain_from_model(model, spec.bodies["pelvis"], spec.bodies["anchor"])
    assert len(chain.joint_index) == 3  # waist yaw, roll, pitch
    rng = np.random.default_rng(0)
    qpos = _random_states(rng, model, 16)
    data = mujoco.MjData(model)
    torso = model.body(spec.bodies["anchor"]).id
    expected = []
    for q in qpos:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        expected.append(data.xquat[torso].copy())
    got = chain.anchor_quat(qpos[:, 3:7], qpos[:, 7:])
    dots = np.abs(np.sum(got * np.array(expected), axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-9)
    again = ob.AnchorChain.from_json(chain.to_json())
    np.testing.assert_allclose(again.anchor_quat(qpos[:, 3:7], qpos[:, 7:]), got)


def test_terms_and_layout():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(5, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    # identical orientations -> identity columns
    np.testing.assert_allclose(ob.anchor_ori_error(q, q), np.tile([1, 0, 0, 1, 0, 0], (5, 1)), atol=1e-12)
    # projected gravity: R^T (0,0,-1)
    mats = ob.quat_to_matrix(q)
    np.testing.assert_allclose(ob.projected_gravity(q), -mats[:, 2, :], atol=1e-12)
    n = 29
    layout = ob.actor_layout(n)
    assert ob.layout_size(layout) == 5 * n + 6 + 3 + 3 == 157
    zeros = np.zeros((5, n))
    obs = ob.actor_observation(
        ref_joint_pos=zeros + 1,
        ref_joint_vel=zeros + 2,
        ref_anchor_quat_w=q,
        anchor_quat_w=q,
        base_quat_w=q,
        base_ang_vel_b=np.ones((5, 3)) * 3,
        joint_pos=zeros + 0.5,
        joint_vel=zeros + 4,
        default_joint_pos=np.full(n, 0.25),
        last_action=zeros + 5,
    )
    assert obs.shape == (5, ob.layout_size(layout)) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:, :n], 1)
    np.testing.assert_allclose(obs[:, 2 * n + 12 : 3 * n + 12], 0.25)
    np.testing.assert_allclose(obs[:, -n:], 5)


def test_env_actor_observation_is_what_the_robot_can_compute():
    """The task's actor observation (no noise) equals the deploy computation from robot-side signals only:
    IMU orientation and gyro, joint encoders, the reference, the last action (torso from the waist FK)."""
    from pipeline.sim.config import from_dict, nominal
    from pipeline.sim.task import TrackingEnv

    from .sim_helpers import swing_motion

    env = TrackingEnv(nominal(from_dict({"num_envs": 3, "sim": {"nthread": 1}})), [swing_motion(80)], ["m"])
    env.reset()
    rng = np.random.default_rng(2)
    for _ in range(5):
        obs, *_ = env.step(rng.normal(0, 0.3, (3, env.num_actions)))
    spec = load_robot("g1")
    chain = ob.anchor_chain_from_model(env.backend.model, spec.bodies["pelvis"], spec.bodies["anchor"])
    be = env.backend
    ref = env._reference()
    imu_quat, gyro, q, dq = be.qpos[:, 3:7], be.qvel[:, 3:6], be.qpos[:, 7:], be.qvel[:, 6:]
    expected = ob.actor_observation(
        ref_joint_pos=ref["joint_pos"],
        ref_joint_vel=ref["joint_vel"],
        ref_anchor_quat_w=ref["body_quat_w"][:, env.r_anchor],
        anchor_quat_w=chain.anchor_quat(imu_quat, q),
        base_quat_w=imu_quat,
        base_ang_vel_b=gyro,
        joint_pos=q,
        joint_vel=dq,
        default_joint_pos=spec.default_pos,
        last_action=env.last_action,
    )
    np.testing.assert_allclose(obs["actor"], expected, atol=1e-5)
