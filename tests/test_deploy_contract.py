"""Contract test: a rollout of the training task (pipeline.sim.task.TrackingEnv, randomization off) replayed
through the deploy code gives the training observations and actions step by step within 1e-5.

Training side: the task's own actor observation (``env.obs["actor"]``, from the simulator's state and the task's
reference), the student's history buffer (pipeline.learn.student.HistoryBuffer) and the torch actor + normalizer.
Deploy side: the pelvis IMU and joints of the same simulator state encoded as a unitree_hg LowState_ and decoded
(float32, CRC checked), the anchor from the IMU through the waist joints, the bundle's reference with its yaw
alignment, the runtime's first last-action, its history buffer and onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.deploy import dds
from pipeline.deploy.contract import load_bundle
from pipeline.deploy.interfaces import SimInterface
from pipeline.deploy.observation import AnchorChain, actor_layout
from pipeline.deploy.observer import Observer
from pipeline.deploy.policy import ObsHistory, OnnxPolicy
from pipeline.deploy.runtime import Runtime
from pipeline.deploy.state import RobotState
from pipeline.learn.export import export_bundle
from pipeline.learn.student import HistoryBuffer
from pipeline.robot.model import mujoco_model
from pipeline.sim.config import from_dict
from pipeline.sim.task import TrackingEnv
from tests.deploy_fixtures import Normalizer, TrackReference, mlp, obs_size, sway_motion

HISTORY = 2
SWITCHES = ("friction", "mass_scale", "com_offset", "kp_scale", "kd_scale", "motor_strength", "action_latency",
            "obs_noise", "push_velocity", "calibration_offset", "terrain")  # fmt: skip
RANGES = {"friction": [0.6, 0.6], "mass_scale": [1.0, 1.0], "kp_scale": [1.0, 1.0], "kd_scale": [1.0, 1.0],
          "motor_strength": [1.0, 1.0], "obs_noise": [1.0, 1.0]}  # fmt: skip


class Residual(torch.nn.Module):
    """Reference replay plus a small random MLP: varied actions that keep the robot up for the rollout."""

    def __init__(self) -> None:
        super().__init__()
        self.track = TrackReference(HISTORY)
        self.mlp = mlp(HISTORY, seed=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.track(x) + 0.3 * self.mlp(x)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, torch.nn.Module]:
    actor, norm = Residual(), Normalizer(obs_size() * HISTORY)
    out = tmp_path_factory.mktemp("bundle") / "deploy"
    export_bundle(actor, norm, sway_motion(1.0), out, history=HISTORY)
    return out, actor, norm


def test_rollout_matches_training_step_by_step(
    exported: tuple[Path, torch.nn.Module, torch.nn.Module],
) -> None:
    root, actor, norm = exported
    bundle = load_bundle(root)
    c = bundle.contract
    cfg = from_dict({"clips": ["sway"], "loop": [], "num_envs": 1, "sim": {"nthread": 1},
                     "randomization": {k: {"enabled": False, "range": RANGES.get(k, [0.0, 0.0])} for k in SWITCHES}})  # fmt: skip
    assert cfg.control_dt == c.control_dt
    env = TrackingEnv(cfg, [sway_motion(1.0)], ["sway"], num_envs=1)
    steps = bundle.motion.num_frames - 1
    env.set_eval(np.array([0]), np.array([steps]))
    env.reset()
    be = env.backend

    runtime = Runtime(bundle, SimInterface(control_dt=c.control_dt))  # only for its first last-action
    observer = Observer(c, bundle.motion, AnchorChain.from_json(c.anchor_chain))
    policy = OnnxPolicy(bundle.policy_path, obs_size=c.obs_size * HISTORY, num_actions=c.num_joints)
    deploy_hist, train_hist = ObsHistory(HISTORY, c.obs_size), HistoryBuffer(1, HISTORY, c.obs_size)
    writer = dds.StateWriter(c.num_joints)
    last_deploy = runtime.initial_action()
    worst_obs = worst_act = 0.0
    compared = 0
    for k in range(steps):
        # the robot's signals, through the unitree_hg message and back (float32, CRC checked)
        true_state = RobotState(0.0, k, be.qpos[0, 7:].copy(), be.qvel[0, 6:].copy(), np.zeros(c.num_joints),
                                be.qpos[0, 3:7].copy(), be.qvel[0, 3:6].copy(), np.zeros(3))  # fmt: skip
        state, crc_ok = dds.state_from_wire(writer.fill(true_state), c.num_joints, 0.0)
        assert crc_ok
        if k == 0:
            observer.start(state)
        obs_t = train_hist.push(env.obs["actor"])[0]
        with torch.no_grad():
            act_t = actor(norm(torch.as_tensor(obs_t)[None]))[0].numpy().astype(np.float64)
        obs_d = deploy_hist.push(observer.frame(state, k, last_deploy))
        act_d = policy(obs_d)
        worst_obs = max(worst_obs, float(np.abs(obs_d - obs_t).max()))
        worst_act = max(worst_act, float(np.abs(act_d - act_t).max()))
        assert np.abs(obs_d - obs_t).max() <= 1e-5, f"observation differs at step {k}"
        assert np.abs(act_d - act_t).max() <= 1e-5, f"action differs at step {k}"
        compared += 1
        _, _, terminated, time_out, _ = env.step(act_t[None])
        last_deploy = act_d
        if terminated[0] or time_out[0]:
            break
    assert compared >= 20, compared
    assert worst_obs > 0.0  # the comparison is not vacuous (the float32 transport shows)


def test_anchor_chain_matches_mujoco_fk(exported: tuple[Path, torch.nn.Module, torch.nn.Module]) -> None:
    import mujoco

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
