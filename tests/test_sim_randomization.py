"""Each domain randomization changes what the simulation does; draws are reproducible by seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.sim.config import Switch, TrainConfig, from_dict, nominal
from pipeline.sim.task import TrackingEnv

from .sim_helpers import swing_motion

E = 2
STEPS = 12
MOTION = swing_motion(100, walk_speed=0.6)

# one extreme setting per randomization
EXTREME = {
    "friction": Switch(True, (0.1, 0.1)),
    "mass_scale": Switch(True, (1.5, 1.5)),
    "com_offset": Switch(True, (0.08, 0.08)),
    "kp_scale": Switch(True, (0.5, 0.5)),
    "kd_scale": Switch(True, (3.0, 3.0)),
    "motor_strength": Switch(True, (0.3, 0.3)),
    "action_latency": Switch(True, (0.015, 0.015)),
    "push_velocity": Switch(True, (1.0, 1.0)),
    "calibration_offset": Switch(True, (0.05, 0.05)),
    "terrain": Switch(True, (0.05, 0.05)),
}


def _run(
    cfg: TrainConfig, seed: int = 0, push_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, TrackingEnv]:
    cfg = dataclasses.replace(cfg, seed=seed)
    env = TrackingEnv(cfg, [MOTION], ["m"], num_envs=E)
    env.push_scale = push_scale
    env.set_eval(np.zeros(E, dtype=np.int64), np.full(E, 1000))
    obs = env.reset()
    actions = np.random.default_rng(1).normal(0, 0.3, (STEPS, E, env.num_actions))
    first_obs = obs["actor"].copy()
    for a in actions:
        env.step(a)
    return env.backend.qpos.copy(), first_obs, env


@pytest.fixture(scope="module")
def base() -> TrainConfig:
    cfg = nominal(from_dict({"num_envs": E, "sim": {"nthread": 1}}))
    rnd = dataclasses.replace(cfg.randomization, push_interval=(0.05, 0.1))
    return dataclasses.replace(cfg, randomization=rnd)


@pytest.fixture(scope="module")
def nominal_run(base):
    return _run(base)


@pytest.mark.parametrize("name", sorted(EXTREME))
def test_randomization_changes_the_simulation(name, base, nominal_run):
    cfg = dataclasses.replace(
        base, randomization=dataclasses.replace(base.randomization, **{name: EXTREME[name]})
    )
    qpos, _, _ = _run(cfg)
    diff = np.abs(qpos - nominal_run[0]).max()
    assert diff > 1e-4, f"{name} left the trajectory unchanged (max |dq| {diff})"


def test_push_curriculum_scales_pushes(base, nominal_run):
    """Training's push curriculum (randomization.push_ramp) scales the pushes: at 0 there are none."""
    cfg = dataclasses.replace(
        base, randomization=dataclasses.replace(base.randomization, push_velocity=EXTREME["push_velocity"])
    )
    np.testing.assert_array_equal(_run(cfg, push_scale=0.0)[0], nominal_run[0])
    half, full = _run(cfg, push_scale=0.5)[0], _run(cfg)[0]
    assert np.abs(half - nominal_run[0]).max() > 1e-4 and np.abs(half - full).max() > 1e-4
    with pytest.raises(InputError, match="push_ramp"):
        from_dict({"randomization": {"push_ramp": 1.5}})


def test_nominal_is_deterministic(base, nominal_run):
    np.testing.assert_array_equal(_run(base)[0], nominal_run[0])


def test_observation_noise_changes_only_observations(base, nominal_run):
    cfg = dataclasses.replace(
        base, randomization=dataclasses.replace(base.randomization, obs_noise=Switch(True, (1.0, 1.0)))
    )
    qpos, first_obs, _ = _run(cfg)
    np.testing.assert_array_equal(qpos, nominal_run[0])  # actions are fixed here, so physics is unchanged
    assert np.abs(first_obs - nominal_run[1]).max() > 1e-3


def test_model_parameters_are_per_env_and_reproducible_by_seed():
    cfg = from_dict({"num_envs": 3, "sim": {"nthread": 1}})
    a = TrackingEnv(cfg, [MOTION], ["m"])
    a.reset()
    b = TrackingEnv(cfg, [MOTION], ["m"])
    b.reset()
    pa, pb = a.randomizer.params, b.randomizer.params
    np.testing.assert_array_equal(pa.kp_scale, pb.kp_scale)
    np.testing.assert_array_equal(pa.friction, pb.friction)
    # each env's model carries its own values
    gains = [a.backend.env_model(i).actuator_gainprm[:, 0] for i in range(3)]
    np.testing.assert_allclose(gains[1], a.robot.kp * pa.kp_scale[1])
    assert not np.allclose(gains[0], gains[1])
    masses = [a.backend.env_model(i).body_mass for i in range(3)]
    assert not np.allclose(masses[0], masses[2])
    c = TrackingEnv(dataclasses.replace(cfg, seed=7), [MOTION], ["m"])
    c.reset()
    assert not np.allclose(c.randomizer.params.kp_scale, pa.kp_scale)


@pytest.mark.parametrize("native", [True, False])
def test_reset_clears_the_action_latency(base, native):
    """After a reset the latency replays the target that holds the new episode's first reference frame, never
    the previous episode's last commands: an env that ran wild and was reset steps exactly like a fresh one.
    ``native``: the latency as the backend's actuator delays (training) or as held targets in the task."""
    from pipeline.robot.spec import load_robot
    from pipeline.sim.backend import CpuBatch, build_model

    cfg = dataclasses.replace(
        base,
        randomization=dataclasses.replace(base.randomization, action_latency=Switch(True, (0.015, 0.015))),
    )
    robot = load_robot(cfg.robot)
    rng = np.random.default_rng(3)

    def env() -> TrackingEnv:
        history = cfg.sim.decimation + 1 if native else 0
        model = build_model(robot, timestep=cfg.sim.timestep, ctrl_history=history)
        task = TrackingEnv(cfg, [MOTION], ["m"], backend=CpuBatch(model, E, nthread=1))
        assert task.backend.native_delay == native
        task.set_eval(np.zeros(E, dtype=np.int64), np.full(E, 1000))
        return task

    used, fresh = env(), env()
    used.reset()
    assert (used.randomizer.params.latency_steps == 3).all()
    for _ in range(3):
        used.step(rng.normal(0.0, 1.5, (E, used.num_actions)))
    used.reset()
    fresh.reset()
    np.testing.assert_array_equal(used.backend.qpos, fresh.backend.qpos)
    action = rng.normal(0.0, 0.3, (E, used.num_actions))
    used.step(action.copy())
    fresh.step(action.copy())
    np.testing.assert_array_equal(used.backend.qpos, fresh.backend.qpos)


def test_rest_starts_begin_at_the_first_frame_standing_still(base):
    """``sampling.rest_start``: that share of training episodes starts like the deployed robot after its soft
    start (the clip's first frame, standing still); the others start anywhere with the reference's velocities."""
    moving = TrackingEnv(base, [MOTION], ["m"], num_envs=16)
    moving.reset()
    assert np.abs(moving.backend.qvel[:, :3]).max() > 0.3  # walk_speed 0.6
    cfg = dataclasses.replace(base, sampling=dataclasses.replace(base.sampling, rest_start=1.0))
    rest = TrackingEnv(cfg, [MOTION], ["m"], num_envs=16)
    rest.reset()
    assert (rest.start == 0).all()
    np.testing.assert_array_equal(rest.backend.qvel, 0.0)
    first = rest.ref.at(np.zeros(16, dtype=np.int64), np.zeros(16, dtype=np.int64), np.array([0]))
    np.testing.assert_allclose(rest.backend.qpos[:, 7:], first["joint_pos"])
    with pytest.raises(Exception, match="rest_start"):
        from_dict({"sampling": {"rest_start": 1.5}})
