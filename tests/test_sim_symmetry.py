"""The mirror of every observation group is the task's own observation of the physically mirrored state."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from pipeline.sim.config import from_dict, nominal
from pipeline.sim.symmetry import PSEUDO, VEC, TaskMirror, augment, joint_mirror, partner
from pipeline.sim.task import TrackingEnv

from .sim_helpers import swing_motion

QUAT = np.array([1.0, -1.0, 1.0, -1.0])  # (w, x, y, z) of M R M


@pytest.fixture(scope="module")
def env() -> TrackingEnv:
    cfg = nominal(from_dict({"num_envs": 3, "sim": {"nthread": 1}}))
    motion = swing_motion(120, walk_speed=0.4, yaw_rate=0.3)
    env = TrackingEnv(cfg, [motion], ["m"])
    env.reset()
    rng = np.random.default_rng(1)
    for _ in range(6):  # moving, off the reference, feet loaded
        env.step(0.3 * rng.normal(size=(env.num_envs, env.num_actions)))
    return env


def _mirror_reference(env: TrackingEnv, ref: dict, joints) -> dict:
    m = env.backend.model
    names = [m.body(int(i) + 1).name for i in env.ref_bodies]
    order = np.array([names.index(partner(n)) for n in names])
    return {
        "joint_pos": joints(ref["joint_pos"]),
        "joint_vel": joints(ref["joint_vel"]),
        "body_pos_w": ref["body_pos_w"][:, order] * VEC,
        "body_quat_w": ref["body_quat_w"][:, order] * QUAT,
        "body_lin_vel_w": ref["body_lin_vel_w"][:, order] * VEC,
        "body_ang_vel_w": ref["body_ang_vel_w"][:, order] * PSEUDO,
        "done": ref["done"],
    }


def _solve_contacts(be) -> None:
    """The batch keeps the contact wrenches of its last physics step; here they must belong to the state
    written by hand: a full mj_forward of each env."""
    out = np.empty_like(be.cfrc_ext)
    for i in range(be.num_envs):
        m = be.env_model(i)
        d = mujoco.MjData(m)
        d.qpos[:], d.qvel[:] = be.qpos[i], be.qvel[i]
        mujoco.mj_forward(m, d)
        out[i] = d.cfrc_ext
    assert np.abs(out[:, 1:, 5]).max() > 100.0  # the feet carry the robot
    be.cfrc_ext = out


def test_every_group_mirrors_like_the_mirrored_state(env: TrackingEnv):
    be = env.backend
    joints = joint_mirror(env.robot.joint_names)
    mirror = TaskMirror.of(env)
    be.qpos[:, :2] += [0.2, -0.3]  # off the reference's path, so the anchor position error is large too
    be.forward()
    _solve_contacts(be)
    ref = env._reference()
    obs = env._observe(ref)
    solved = be.cfrc_ext
    be.cfrc_ext = np.zeros_like(solved)
    force_cols = np.flatnonzero((env._observe(ref)["critic"] != obs["critic"]).any(0))
    assert len(force_cols) == 6  # two feet
    qpos, qvel = be.qpos.copy(), be.qvel.copy()
    be.qpos[:, :3] = qpos[:, :3] * VEC
    be.qpos[:, 3:7] = qpos[:, 3:7] * QUAT
    be.qpos[:, 7:] = joints(qpos[:, 7:])
    be.qvel[:, :3] = qvel[:, :3] * VEC
    be.qvel[:, 3:6] = qvel[:, 3:6] * PSEUDO  # angular velocity in the (mirrored) root frame
    be.qvel[:, 6:] = joints(qvel[:, 6:])
    be.forward()
    _solve_contacts(be)
    env.last_action = joints(env.last_action)
    seen = env._observe(_mirror_reference(env, ref, joints))
    assert set(seen) == set(mirror.groups)
    for group, perm in mirror.groups.items():
        assert np.abs(obs[group]).max() > 0.05
        tol = np.full(obs[group].shape[1], 2e-5)
        if group == "critic":  # the model's feet differ by ~1 mm left/right: contact forces by up to ~2 N
            tol[force_cols] = 0.03
        assert (np.abs(perm(obs[group]) - seen[group]) <= tol).all(), group
    # a mirror twice is the identity; the action mirrors like the joints
    for perm in (*mirror.groups.values(), mirror.action):
        np.testing.assert_array_equal(perm(perm(np.arange(len(perm.index), dtype=float) + 1)),
                                      np.arange(len(perm.index)) + 1.0)  # fmt: skip


def test_augment_appends_the_mirror_to_the_batch(env: TrackingEnv):
    class Vec:
        mirror = TaskMirror.of(env)

    obs = env._observe(env._reference())
    td = TensorDict({k: torch.from_numpy(v) for k, v in obs.items()}, batch_size=[env.num_envs])
    actions = torch.randn(env.num_envs, env.num_actions)
    out, acts = augment(Vec(), td, actions)
    assert out.batch_size[0] == acts.shape[0] == 2 * env.num_envs
    torch.testing.assert_close(out["actor"][: env.num_envs], td["actor"])
    want = Vec.mirror.groups["actor"](obs["actor"])
    np.testing.assert_allclose(out["actor"][env.num_envs :].numpy(), want, atol=1e-7)
    np.testing.assert_allclose(acts[env.num_envs :].numpy(), Vec.mirror.action(actions.numpy()), atol=1e-7)


def test_a_robot_without_twins_is_refused():
    with pytest.raises(ValueError, match="no mirror twin"):
        joint_mirror(["left_knee_joint", "waist_yaw_joint"])


def test_a_robot_with_an_asymmetric_default_pose_is_refused(env: TrackingEnv, monkeypatch):
    TaskMirror.of(env)  # the G1's default pose and action scales are symmetric
    default = env.default.copy()
    default[env.robot.joint_names.index("left_hip_roll_joint")] = 0.1
    monkeypatch.setattr(env, "default", default)
    with pytest.raises(ValueError, match=r"default pose is not left-right symmetric \(left_hip_roll_joint"):
        TaskMirror.of(env)
    monkeypatch.undo()
    scale = env.action_scale.copy()
    scale[env.robot.joint_names.index("right_knee_joint")] *= 2
    monkeypatch.setattr(env, "action_scale", scale)
    with pytest.raises(ValueError, match=r"action scale is not left-right symmetric \(left_knee_joint"):
        TaskMirror.of(env)
