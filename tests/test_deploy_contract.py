"""Contract test: a simulated rollout replayed through the deploy code gives the training-side observations and
actions step by step (1e-5), with the robot's signals going through the DDS message conversion (float32).

Training side: the simulator's own state (torso xquat, free-joint angular velocity), the training task's
reference (pipeline.sim.reference.MotionReference) and the torch actor + normalizer. Deploy side: the pelvis IMU
and joints encoded as a unitree_hg LowState_ and decoded, the anchor from the IMU through the waist joints, the
bundle's reference, and onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from pipeline.deploy import dds
from pipeline.deploy.contract import load_bundle
from pipeline.deploy.observation import AnchorChain, actor_layout, actor_observation, align_yaw
from pipeline.deploy.observer import Observer
from pipeline.deploy.policy import ObsHistory, OnnxPolicy
from pipeline.deploy.state import RobotState
from pipeline.learn.export import export_bundle
from pipeline.robot.model import mujoco_model
from pipeline.robot.spec import load_robot
from pipeline.sim.reference import MotionReference
from tests.deploy_fixtures import Normalizer, mlp, obs_size, sway_motion

HISTORY = 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, torch.nn.Module]:
    actor, norm = mlp(HISTORY, seed=3), Normalizer(obs_size() * HISTORY)
    out = tmp_path_factory.mktemp("bundle") / "deploy"
    export_bundle(actor, norm, sway_motion(1.0), out, history=HISTORY)
    return out, actor, norm


def _training_obs(data: mujoco.MjData, model: mujoco.MjModel, ref: dict[str, np.ndarray], k: int,
                  last_action: np.ndarray, default: np.ndarray) -> np.ndarray:  # fmt: skip
    """What the training side computes from the simulator's own state (no IMU, no FK from the IMU)."""
    torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso_link")
    return actor_observation(
        ref_joint_pos=ref["joint_pos"][k][None],
        ref_joint_vel=ref["joint_vel"][k][None],
        ref_anchor_quat_w=ref["anchor_quat_w"][k][None],
        anchor_quat_w=data.xquat[torso][None],
        base_quat_w=data.qpos[3:7][None],
        base_ang_vel_b=data.qvel[3:6][None],
        joint_pos=data.qpos[7:][None],
        joint_vel=data.qvel[6:][None],
        default_joint_pos=default[None],
        last_action=last_action[None],
    )[0]


def test_rollout_matches_training_step_by_step(
    exported: tuple[Path, torch.nn.Module, torch.nn.Module],
) -> None:
    root, actor, norm = exported
    bundle = load_bundle(root)
    c = bundle.contract
    spec = load_robot("g1")
    model = mujoco_model("g1")  # the training model: position actuators with the robot's kp/kd
    data = mujoco.MjData(model)
    motion = sway_motion(1.0)
    decimation = round(c.control_dt / model.opt.timestep)
    data.qpos[:] = motion.qpos[0]
    data.qvel[6:] = motion.dof_vel[0]
    mujoco.mj_forward(model, data)
    # the training task's reference (pipeline.sim.reference), not the bundle's copy of it
    frames = MotionReference([motion], ["sway"], c.control_dt, spec, motion.body_names).clip_len[0]
    at = MotionReference([motion], ["sway"], c.control_dt, spec, motion.body_names).at(
        np.zeros(frames, np.int64), np.arange(frames)
    )
    ref = {"joint_pos": at["joint_pos"], "joint_vel": at["joint_vel"],
           "anchor_quat_w": at["body_quat_w"][:, motion.body_index("torso_link")]}  # fmt: skip

    observer = Observer(c, bundle.motion, AnchorChain.from_json(c.anchor_chain))
    policy = OnnxPolicy(bundle.policy_path, obs_size=c.obs_size * HISTORY, num_actions=c.num_joints)
    deploy_hist, train_hist = ObsHistory(HISTORY, c.obs_size), ObsHistory(HISTORY, c.obs_size)
    writer = dds.StateWriter(c.num_joints)
    last_train, last_deploy = np.zeros(c.num_joints), np.zeros(c.num_joints)
    worst_obs = worst_act = 0.0
    steps = min(40, bundle.motion.num_frames)
    for k in range(steps):
        # the robot's signals, through the unitree_hg message and back (float32, CRC checked)
        true_state = RobotState(0.0, k, data.qpos[7:].copy(), data.qvel[6:].copy(), np.zeros(c.num_joints),
                                data.qpos[3:7].copy(), data.qvel[3:6].copy(), np.zeros(3))  # fmt: skip
        state, crc_ok = dds.state_from_wire(writer.fill(true_state), c.num_joints, 0.0)
        assert crc_ok
        if k == 0:
            observer.start(state)
            ref["anchor_quat_w"] = align_yaw(ref["anchor_quat_w"], data.xquat[model.body("torso_link").id][None],
                                             ref["anchor_quat_w"][:1])  # fmt: skip
        obs_t = train_hist.push(_training_obs(data, model, ref, k, last_train, spec.default_pos))
        with torch.no_grad():
            act_t = (
                actor(norm(torch.as_tensor(obs_t, dtype=torch.float32)[None]))[0].numpy().astype(np.float64)
            )
        obs_d = deploy_hist.push(observer.frame(state, k, last_deploy))
        act_d = policy(obs_d)
        worst_obs = max(worst_obs, float(np.abs(obs_d - obs_t).max()))
        worst_act = max(worst_act, float(np.abs(act_d - act_t).max()))
        assert np.abs(obs_d - obs_t).max() <= 1e-5, f"observation differs at step {k}"
        assert np.abs(act_d - act_t).max() <= 1e-5, f"action differs at step {k}"
        data.ctrl[:] = c.default_joint_pos + c.action_scale * act_t
        mujoco.mj_step(model, data, nstep=decimation)
        mujoco.mj_kinematics(model, data)  # body poses of the new qpos (mj_step leaves them one step behind)
        last_train, last_deploy = act_t, act_d
    assert k == steps - 1 and worst_obs > 0.0  # the comparison is not vacuous (float32 transport shows)


def test_anchor_chain_matches_mujoco_fk(exported: tuple[Path, torch.nn.Module, torch.nn.Module]) -> None:
    c = load_bundle(exported[0]).contract
    chain = AnchorChain.from_json(c.anchor_chain)
    model = mujoco_model("g1")
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    lo, hi = model.jnt_range[1:, 0], model.jnt_range[1:, 1]
    for _ in range(20):
        q = rng.normal(size=4)
        data.qpos[3:7] = q / np.linalg.norm(q)
        data.qpos[7:] = rng.uniform(lo, hi)
        mujoco.mj_kinematics(model, data)
        got = chain.anchor_quat(data.qpos[3:7][None], data.qpos[7:][None])[0]
        want = data.xquat[model.body(c.anchor_body).id]
        assert min(np.abs(got - want).max(), np.abs(got + want).max()) < 1e-9


def test_layout_in_contract_is_the_training_layout(
    exported: tuple[Path, torch.nn.Module, torch.nn.Module],
) -> None:
    c = load_bundle(exported[0]).contract
    assert [(t.name, t.size, t.scale) for t in c.obs_terms] == [
        (t.name, t.size, t.scale) for t in actor_layout(c.num_joints)
    ]
    assert c.history == HISTORY and c.obs_size == obs_size()
