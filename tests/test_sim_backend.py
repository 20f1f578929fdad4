"""The batched backend against a plain mj_step loop (MuJoCo's own habit: fast path vs slow reference)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from pipeline.robot.spec import load_robot
from pipeline.sim.backend import CpuBatch, build_model


def _states(model: mujoco.MjModel, e: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    robot = load_robot("g1")
    qpos = np.tile(model.qpos0, (e, 1))
    qpos[:, 2] = 0.78 + rng.uniform(-0.02, 0.02, e)
    qpos[:, 7:] = robot.default_pos + rng.uniform(-0.2, 0.2, (e, robot.num_joints))
    qvel = rng.normal(0.0, 0.3, (e, model.nv))
    return qpos, qvel


@pytest.mark.parametrize("held", [False, True])
def test_batched_step_equals_mj_step_loop_with_per_env_params(held):
    """held: the targets change only after the first substep (latency), so substeps are merged natively."""
    robot = load_robot("g1")
    model = build_model(robot, timestep=0.005)
    e, dec = 4, 4
    rng = np.random.default_rng(0)
    be = CpuBatch(model, e, nthread=2)
    mass = be.param("body_mass")
    mass[:] = model.body_mass * rng.uniform(0.8, 1.2, (e, model.nbody))
    qpos, qvel = _states(model, e, rng)
    be.qpos[:] = qpos
    be.qvel[:] = qvel
    be.forward()
    ctrl = robot.default_pos + rng.uniform(-0.3, 0.3, (e, dec, model.nu))
    if held:
        ctrl[:, 2:] = ctrl[:, 1:2]
    for _ in range(3):
        be.step(ctrl)
    for i in range(e):
        m_i = be.env_model(i)
        np.testing.assert_array_equal(m_i.body_mass, mass[i])
        d = mujoco.MjData(m_i)
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        for _ in range(3):
            for k in range(dec):
                d.ctrl[:] = ctrl[i, k]
                mujoco.mj_step(m_i, d)
        mujoco.mj_forward(m_i, d)
        np.testing.assert_array_equal(be.qpos[i], d.qpos)
        np.testing.assert_array_equal(be.qvel[i], d.qvel)
        np.testing.assert_allclose(be.xpos[i], d.xpos, atol=1e-12)
        np.testing.assert_allclose(be.xquat[i], d.xquat, atol=1e-12)
        vel = np.zeros(6)
        b = model.body("torso_link").id
        mujoco.mj_objectVelocity(m_i, d, mujoco.mjtObj.mjOBJ_XBODY, b, vel, 0)
        np.testing.assert_allclose(be.body_lin_vel_w(np.array([b]))[i, 0], vel[3:], atol=1e-9)
        np.testing.assert_allclose(be.body_ang_vel_w(np.array([b]))[i, 0], vel[:3], atol=1e-9)
    # the per-env masses really differ between envs, so equality above is per-env, not shared
    assert not np.allclose(mass[0], mass[1])


def test_contact_forces_reported_on_feet():
    robot = load_robot("g1")
    model = build_model(robot, timestep=0.005)
    be = CpuBatch(model, 2, nthread=1)
    be.qpos[:] = model.qpos0
    be.qpos[:, 2] = 0.76
    be.qpos[:, 7:] = robot.default_pos
    be.forward()
    for _ in range(10):
        be.step(np.tile(robot.default_pos, (2, 4, 1)))
    feet = [model.body(n).id for n in robot.feet]
    total = be.cfrc_ext[:, feet, 5].sum(1)
    weight = model.body_subtreemass[1] * 9.81
    assert np.all(total > 0.5 * weight), (total, weight)


def test_native_actuator_delay_equals_held_targets():
    """Action latency as MuJoCo actuator delays (one native call per policy step) equals holding the previous
    target for the first ``latency`` substeps explicitly, per env."""
    robot = load_robot("g1")
    e, dec = 3, 4
    rng = np.random.default_rng(1)
    plain = CpuBatch(build_model(robot, timestep=0.005), e, nthread=1)
    native = CpuBatch(build_model(robot, timestep=0.005, ctrl_history=dec + 1), e, nthread=2)
    assert native.native_delay and not plain.native_delay
    qpos, qvel = _states(plain.model, e, rng)
    latency = np.array([0, 1, 2])
    prev = np.tile(robot.default_pos, (e, 1))
    for be in (plain, native):
        be.qpos[:], be.qvel[:] = qpos, qvel
        be.forward()
    native.set_ctrl_delay(np.arange(e), latency)
    native.hold_ctrl(np.arange(e), prev)
    sub = np.arange(dec)[None, :, None]
    for _ in range(4):
        ctrl = robot.default_pos + rng.uniform(-0.3, 0.3, (e, robot.num_joints))
        plain.step(np.where(sub < latency[:, None, None], prev[:, None], ctrl[:, None]))
        native.step(np.broadcast_to(ctrl[:, None], (e, dec, robot.num_joints)))
        prev = ctrl
        np.testing.assert_allclose(native.qpos, plain.qpos, atol=1e-12)
        np.testing.assert_allclose(native.xpos, plain.xpos, atol=1e-12)
    # the delay matters: without it the same controls give another motion
    native.set_ctrl_delay(np.arange(e), np.zeros(e, dtype=np.int64))
    plain.step(np.where(sub < latency[:, None, None], prev[:, None], ctrl[:, None] + 0.2))
    native.step(np.broadcast_to(ctrl[:, None] + 0.2, (e, dec, robot.num_joints)))
    assert not np.allclose(native.qpos[1:], plain.qpos[1:], atol=1e-6)


def test_substeps_equal_a_policy_step_and_report_actuator_forces():
    """``substep`` (what evaluation's actuator model steps with) is the same physics as ``step``, one physics
    step at a time; ``actuator_force`` is the last physics step's, as MjData's after mj_step."""
    robot = load_robot("g1")
    model = build_model(robot, timestep=0.005)
    e, dec = 2, 4
    rng = np.random.default_rng(2)
    whole, single = CpuBatch(model, e, nthread=1), CpuBatch(model, e, nthread=1)
    qpos, qvel = _states(model, e, rng)
    ctrl = robot.default_pos + rng.uniform(-0.3, 0.3, (e, dec, model.nu))
    for be in (whole, single):
        be.qpos[:], be.qvel[:] = qpos, qvel
        be.forward()
    whole.step(ctrl)
    for k in range(dec):
        single.substep(ctrl[:, k], derived=k == dec - 1)
    np.testing.assert_array_equal(single.qpos, whole.qpos)
    np.testing.assert_array_equal(single.xpos, whole.xpos)
    d = mujoco.MjData(model)
    d.qpos[:], d.qvel[:] = qpos[0], qvel[0]
    for k in range(dec):
        d.ctrl[:] = ctrl[0, k]
        mujoco.mj_step(model, d)
    np.testing.assert_array_equal(single.actuator_force[0], d.actuator_force)
    assert np.abs(d.actuator_force).max() > 1.0
