"""Evaluation conditions and the held-out "sim2sim" physics.

- ``nominal``: the training task with every randomization off (no noise, no pushes, nominal model).
- ``randomized``: the training randomization ranges (params.yaml ``train.randomization``).
- ``sim2sim``: physics the policy never saw: another integrator and timestep (decimation adjusted to keep the
  policy rate), every randomization range widened ``range_scale`` times around its centre (ranges starting at
  0 - latency, noise, pushes - keep 0 and stretch their top), and an actuator model: a fixed extra command
  latency and a torque-speed limit (the effort limit falls linearly from ``knee_fraction * v_max`` to zero at
  the joint's velocity limit, robot.yaml ``velocity_limit``).
- ``sim2sim_physics`` / ``sim2sim_ranges`` / ``sim2sim_actuator``: one of those three changes at a time, on top
  of ``randomized`` (the ablation that says where the sim2sim drop comes from).

:class:`EvalBatch` is the CPU backend plus the actuator model and a record of the actuator torques.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mujoco
import numpy as np

from pipeline.errors import InputError
from pipeline.robot.spec import RobotSpec
from pipeline.sim.backend import TERRAIN_LEVELS, CpuBatch, build_model
from pipeline.sim.config import RandomizationConfig, Switch, TrainConfig, nominal
from pipeline.sim.config import validate as validate_train

CONDITIONS = ("nominal", "randomized", "sim2sim")
ABLATIONS = ("sim2sim_physics", "sim2sim_ranges", "sim2sim_actuator")
INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
    "rk4": mujoco.mjtIntegrator.mjINT_RK4,
}


@dataclass(frozen=True)
class Sim2SimConfig:
    integrator: str = "implicitfast"
    timestep: float = 0.002
    range_scale: float = 1.5
    actuator_latency_s: float = 0.005
    torque_speed: bool = True
    knee_fraction: float = 0.25


@dataclass(frozen=True)
class Physics:
    """What the backend does beyond the task config: integrator, extra latency, torque-speed limit."""

    integrator: str = "euler"
    latency_substeps: int = 0
    torque_speed: bool = False
    knee_fraction: float = 1.0


def widen(sw: Switch, scale: float) -> Switch:
    """A range ``scale`` times as wide around its centre; ranges starting at 0 stretch from 0."""
    lo, hi = sw.range
    if lo == 0.0:
        return dataclasses.replace(sw, range=(0.0, hi * scale))
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * scale
    new_lo = mid - half
    if lo > 0:  # scales and friction stay positive
        new_lo = max(new_lo, 0.1 * lo)
    return dataclasses.replace(sw, range=(new_lo, mid + half))


def widen_all(rnd: RandomizationConfig, scale: float) -> RandomizationConfig:
    out = {f.name: widen(getattr(rnd, f.name), scale) for f in dataclasses.fields(rnd)
           if isinstance(getattr(rnd, f.name), Switch)}  # fmt: skip
    return dataclasses.replace(rnd, **out)  # type: ignore[arg-type]


def condition(tcfg: TrainConfig, name: str, s2s: Sim2SimConfig) -> tuple[TrainConfig, Physics]:
    """The task config and backend physics of evaluation condition ``name``."""
    if name == "nominal":
        return nominal(tcfg), Physics(integrator=_integrator_name(tcfg))
    if name == "randomized":
        return tcfg, Physics(integrator=_integrator_name(tcfg))
    known = (*CONDITIONS, *ABLATIONS)
    if name not in known:
        raise InputError("params.yaml", f"evaluate condition '{name}' is unknown (known: {', '.join(known)})")
    physics = name in ("sim2sim", "sim2sim_physics")
    ranges = name in ("sim2sim", "sim2sim_ranges")
    actuator = name in ("sim2sim", "sim2sim_actuator")
    cfg = tcfg
    if physics:
        dt = tcfg.control_dt
        dec = round(dt / s2s.timestep)
        if dec < 1 or abs(dec * s2s.timestep - dt) > 1e-9:
            raise InputError(
                "params.yaml", f"evaluate.sim2sim.timestep must divide the control period {dt} s"
            )
        cfg = dataclasses.replace(
            cfg, sim=dataclasses.replace(cfg.sim, timestep=s2s.timestep, decimation=dec)
        )
    if ranges:
        cfg = dataclasses.replace(cfg, randomization=widen_all(cfg.randomization, s2s.range_scale))
    cfg = validate_train(cfg, "params.yaml (evaluate.sim2sim)")
    return cfg, Physics(
        integrator=s2s.integrator if physics else _integrator_name(tcfg),
        latency_substeps=round(s2s.actuator_latency_s / cfg.sim.timestep) if actuator else 0,
        torque_speed=bool(actuator and s2s.torque_speed),
        knee_fraction=s2s.knee_fraction,
    )


def _integrator_name(tcfg: TrainConfig) -> str:
    return "euler"  # build_model keeps MuJoCo's default integrator for training


class EvalBatch(CpuBatch):
    """CpuBatch + actuator model (command FIFO of ``latency_substeps``, torque-speed limit) + torque record.

    ``strength`` (E, N) is read each substep (the randomizer's motor strength) to rebuild the effort limit.
    The FIFO of an env is refilled by :meth:`hold_ctrl`, which the task calls at every reset with the target
    that holds the episode's first reference frame: a new episode starts as a robot that has been holding that
    pose, never with the previous episode's commands in flight. An env that was never held (the backend
    used without a task) starts as if its first command had been applied so far.
    Only the public :class:`~pipeline.sim.backend.Backend` surface is used (``substep``, ``actuator_force``,
    ``param``), so another backend can take CpuBatch's place.
    """

    def __init__(
        self, model: mujoco.MjModel, num_envs: int, robot: RobotSpec, physics: Physics, *, nthread: int
    ):
        model.opt.integrator = INTEGRATORS[physics.integrator]
        super().__init__(model, num_envs, nthread=nthread)
        self.physics = physics
        self.vmax = robot.velocity_limit
        self.nominal_range = model.actuator_forcerange.copy()
        self.strength: np.ndarray | None = None
        lat = physics.latency_substeps
        # fifo[0] is the command applied next; (latency, E, nu)
        self.fifo: np.ndarray | None = np.zeros((lat, num_envs, model.nu)) if lat else None
        self._held = np.zeros(num_envs, dtype=bool)
        self.torque_abs_sum = np.zeros(num_envs)
        self.substeps = 0

    def hold_ctrl(self, ids: np.ndarray, ctrl: np.ndarray) -> None:
        super().hold_ctrl(ids, ctrl)
        if self.fifo is not None:
            self.fifo[:, ids] = np.asarray(ctrl)[None]
        self._held[ids] = True

    def step(self, ctrl: np.ndarray) -> None:
        ph, nsub = self.physics, ctrl.shape[1]
        fifo = self.fifo
        if fifo is not None and not self._held.all():
            fresh = ~self._held
            fifo[:, fresh] = ctrl[fresh, 0][None]
            self._held[:] = True
        for k in range(nsub):
            c = ctrl[:, k]
            if fifo is not None:  # apply the oldest command, queue this one
                applied = fifo[0].copy()
                fifo[:-1] = fifo[1:]
                fifo[-1] = c
                c = applied
            if ph.torque_speed:
                qd = np.abs(self.qvel[:, 6:])
                knee = ph.knee_fraction * self.vmax
                factor = np.clip((self.vmax - qd) / np.maximum(self.vmax - knee, 1e-6), 0.0, 1.0)
                strength = 1.0 if self.strength is None else self.strength
                limit = self.nominal_range[None, :, 1] * strength * factor
                fr = self.param("actuator_forcerange")
                fr[:, :, 0], fr[:, :, 1] = -limit, limit
            self.substep(c, derived=k == nsub - 1)
            self.torque_abs_sum += np.abs(self.actuator_force).mean(1)
            self.substeps += 1


def make_backend(cfg: TrainConfig, robot: RobotSpec, physics: Physics, num_envs: int) -> EvalBatch:
    """The model exactly as TrackingEnv builds it (pipeline/sim/task.py), on an EvalBatch."""
    rnd = cfg.randomization
    levels = tuple(np.linspace(*rnd.terrain.range, TERRAIN_LEVELS)) if rnd.terrain.enabled else ()
    model = build_model(robot, timestep=cfg.sim.timestep, terrain=levels, seed=cfg.seed)
    return EvalBatch(model, num_envs, robot, physics, nthread=cfg.sim.nthread)
