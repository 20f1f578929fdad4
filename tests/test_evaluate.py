"""Evaluation: reproducible by seed, the held-out sim2sim physics does what it says, the report's shape."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.evaluate.conditions import EvalBatch, Physics, Sim2SimConfig, condition, make_backend, widen
from pipeline.evaluate.report import ablation, config_from_dict, plot, run_evaluation
from pipeline.evaluate.rollout import METRICS, PolicySpec, rollout
from pipeline.learn.distill import config_from_dict as distill_config
from pipeline.learn.distill import distill
from pipeline.learn.student import load_student
from pipeline.learn.teacher import teacher_policy
from pipeline.robot.spec import load_robot
from pipeline.sim.config import Switch
from pipeline.sim.task import TrackingEnv
from tests.distill_fixtures import TINY_DISTILL, save_teacher, swaying_motion, tiny_train_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("evaluate")
    cfg = tiny_train_config()
    motion = swaying_motion()
    teacher = save_teacher(cfg, motion, tmp / "teacher.pt")
    dcfg = distill_config({**TINY_DISTILL, "max_iterations": 3})
    distill(dcfg, cfg, [motion], ["sway"], teacher, tmp / "student", progress=False)
    return {"tmp": tmp, "cfg": cfg, "motion": motion, "teacher": teacher, "student": tmp / "student"}


def _run(setup: dict, policy: PolicySpec, name: str, seed: int):
    cfg, physics = condition(setup["cfg"], name, Sim2SimConfig())
    return rollout(policy, cfg, physics, [setup["motion"]], ["sway"], history=3, seed=seed,
                   episodes_per_clip=3, min_episode_s=0.6)  # fmt: skip


def test_evaluation_is_reproducible_by_seed(setup: dict):
    student = load_student(setup["student"])
    pol = PolicySpec(("student",), student.act)
    a, b = _run(setup, pol, "randomized", 7), _run(setup, pol, "randomized", 7)
    assert a.summary == b.summary
    np.testing.assert_array_equal(a.qpos, b.qpos)
    c = _run(setup, pol, "randomized", 8)
    assert c.summary["overall"]["mpkpe_mm"] != a.summary["overall"]["mpkpe_mm"]
    assert set(a.summary["overall"]) == {*METRICS, "episodes", "episode_s"}
    t = teacher_policy(setup["teacher"], setup["cfg"])
    assert _run(setup, t, "sim2sim", 3).summary == _run(setup, t, "sim2sim", 3).summary


def test_sim2sim_condition_changes_integrator_timestep_and_ranges():
    tcfg = tiny_train_config()
    s2s = Sim2SimConfig()
    cfg, ph = condition(tcfg, "sim2sim", s2s)
    assert cfg.sim.timestep == 0.002 and cfg.sim.decimation == 10
    assert abs(cfg.control_dt - tcfg.control_dt) < 1e-12
    assert ph.integrator == "implicitfast" and ph.torque_speed and ph.latency_substeps == 2
    assert cfg.randomization.friction.range == pytest.approx((0.2, 1.4))
    assert cfg.randomization.mass_scale.range == pytest.approx((0.85, 1.15))
    assert cfg.randomization.action_latency.range == pytest.approx((0.0, 0.015))
    assert cfg.randomization.com_offset.range == pytest.approx((-0.045, 0.045))
    assert widen(Switch(True, (0.5, 0.6)), 20.0).range[0] == pytest.approx(0.05)  # stays positive
    ranges, ph_r = condition(tcfg, "sim2sim_ranges", s2s)
    assert ranges.sim == tcfg.sim and not ph_r.torque_speed and ph_r.latency_substeps == 0
    phys, ph_p = condition(tcfg, "sim2sim_physics", s2s)
    assert phys.randomization == tcfg.randomization and not ph_p.torque_speed and ph_p.latency_substeps == 0
    nominal, _ = condition(tcfg, "nominal", s2s)
    assert not nominal.randomization.friction.enabled and not nominal.randomization.obs_noise.enabled
    with pytest.raises(InputError, match="unknown"):
        condition(tcfg, "mars", s2s)
    with pytest.raises(InputError, match="divide"):
        condition(tcfg, "sim2sim", Sim2SimConfig(timestep=0.003))


def _batch(physics: Physics, e: int = 2) -> EvalBatch:
    cfg, _ = condition(tiny_train_config(), "nominal", Sim2SimConfig())
    be = make_backend(cfg, load_robot("g1"), physics, e)
    be.qpos[:] = be.model.qpos0
    be.qpos[:, 2] = 1.5  # in the air: no contacts
    be.forward()
    return be


def test_actuator_model_latency_delays_the_command_by_whole_substeps():
    """With a latency of 2 substeps the robot receives c0, c0, c0, c1, c2, ...: exactly the undelayed robot
    driven by that shifted sequence."""
    robot = load_robot("g1")
    rng = np.random.default_rng(0)
    cmds = robot.default_pos + 0.3 * rng.normal(size=(8, robot.num_joints))
    seq = np.broadcast_to(cmds, (2, 8, robot.num_joints))
    slow, fast = _batch(Physics(latency_substeps=2)), _batch(Physics())
    slow.step(seq[:, :4])
    slow.step(seq[:, 4:])
    shifted = np.concatenate([seq[:, :1], seq[:, :1], seq[:, :6]], axis=1)
    fast.step(shifted[:, :4])
    fast.step(shifted[:, 4:])
    np.testing.assert_array_equal(slow.qpos, fast.qpos)
    undelayed = _batch(Physics())
    undelayed.step(seq[:, :4])
    undelayed.step(seq[:, 4:])
    assert not np.allclose(undelayed.qpos, slow.qpos)


def test_reset_clears_the_actuator_model_latency():
    """A reset env starts as a robot that has been holding its first reference frame: the sim2sim actuator
    latency replays that target, not the previous episode's last commands, so an env that ran wild and was
    reset steps exactly like a fresh one. Only the reset envs' commands in flight are replaced."""
    cfg, _ = condition(tiny_train_config(), "nominal", Sim2SimConfig())
    robot, motion, e = load_robot("g1"), swaying_motion(), 2
    rng = np.random.default_rng(0)

    def env() -> TrackingEnv:
        task = TrackingEnv(
            cfg, [motion], ["sway"], backend=make_backend(cfg, robot, Physics(latency_substeps=2), e)
        )
        task.set_eval(np.zeros(e, dtype=np.int64), np.full(e, 100))
        return task

    used, fresh = env(), env()
    used.reset()
    for _ in range(3):
        used.step(rng.normal(0.0, 1.5, (e, robot.num_joints)))
    used.reset()
    fresh.reset()
    be: EvalBatch = used.backend  # type: ignore[assignment]
    assert be.fifo is not None
    np.testing.assert_array_equal(be.fifo, np.broadcast_to(used.prev_ctrl, be.fifo.shape))
    action = rng.normal(0.0, 0.3, (e, robot.num_joints))
    used.step(action.copy())
    fresh.step(action.copy())
    np.testing.assert_array_equal(used.backend.qpos, fresh.backend.qpos)
    before = be.fifo.copy()
    be.hold_ctrl(np.array([1]), np.full((1, robot.num_joints), 0.5))
    np.testing.assert_array_equal(be.fifo[:, 0], before[:, 0])
    assert np.all(be.fifo[:, 1] == 0.5)


def test_torque_speed_limit_caps_the_actuator_torque_at_speed():
    robot = load_robot("g1")
    limited = _batch(Physics(torque_speed=True, knee_fraction=0.25))
    free = _batch(Physics())
    for be in (limited, free):
        be.qvel[:, 6:] = 0.8 * robot.velocity_limit  # fast joints: the limit is 0.27 of the effort
        be.forward()
        be.step(np.tile(robot.default_pos + 0.5, (2, 1, 1)))
    cap = robot.effort_limit * (1 - 0.8) / (1 - 0.25)
    assert np.all(np.abs(limited.actuator_force) <= cap + 1e-6)
    assert np.any(np.abs(free.actuator_force) > cap + 1.0)
    assert limited.model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert (
        _batch(Physics(integrator="implicitfast")).model.opt.integrator
        == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    )


def test_report_shape_plots_and_ablation(setup: dict, tmp_path: Path):
    ecfg = config_from_dict({"episodes_per_clip": 2, "min_episode_s": 0.4, "ablations": False})
    metrics, detail, rollouts = run_evaluation(
        ecfg, setup["cfg"], [setup["motion"]], ["sway"], setup["teacher"], setup["student"], progress=False
    )
    assert set(metrics) == {"teacher", "student"}
    for by in metrics.values():
        assert set(by) == {"nominal", "randomized", "sim2sim"}
        for m in by.values():
            assert set(m) == {*METRICS, "episodes", "episode_s"} and m["episodes"] == 2
    assert set(detail["clips"]["student"]["sim2sim"]) == {"sway"}
    json.dumps(detail)
    paths = plot(metrics, rollouts, tmp_path)
    assert all(p.stat().st_size > 5000 for p in paths)
    fake = {
        p: {c: {"success_rate": s, "mpkpe_mm": 50.0 + 10 * i} for i, (c, s) in enumerate(
            [("randomized", 1.0), ("sim2sim", 0.5), ("sim2sim_physics", 0.9), ("sim2sim_ranges", 0.95),
             ("sim2sim_actuator", 0.6)])}
        for p in ("teacher", "student")
    }  # fmt: skip
    ab = ablation(fake)
    assert ab["student"]["largest_source"] == "actuator"
    assert ab["student"]["drops"]["all"]["success_drop"] == pytest.approx(0.5)
    with pytest.raises(InputError, match="unknown key"):
        config_from_dict({"episodes": 3})


def test_bar_is_meaningful_only_with_enough_teacher_successes() -> None:
    from pipeline.evaluate.report import MIN_TEACHER_SUCCESSES as MIN
    from pipeline.evaluate.report import bar_check

    def metrics(teacher: int, student: int, episodes: int = 16) -> dict:
        def row(k: int) -> dict:
            return {"success_rate": k / episodes, "episodes": episodes, "mpkpe_mm": 100.0}

        return {"teacher": {"randomized": row(teacher)}, "student": {"randomized": row(student)}}

    one = bar_check(metrics(1, 1))
    assert one["passes_0.9"] and not one["meaningful"] and one["teacher_successes"] == 1
    enough = bar_check(metrics(MIN, MIN - 1))
    assert enough["meaningful"] and not enough["passes_0.9"]
    assert enough["randomized_student_over_teacher_success"] == (MIN - 1) / MIN
