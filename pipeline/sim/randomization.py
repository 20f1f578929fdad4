"""Domain randomization: per-env parameters sampled per episode, written into per-env model fields.

Nothing is recompiled: :meth:`Randomizer.apply` writes rows of ``Backend.param`` arrays (MuJoCo's per-simulation
model fields) for the envs being reset. Parameters that are not model fields (action latency, calibration
offsets, observation noise level, pushes) live in :class:`EpisodeParams` and are used by the task.
Derived constants that ``mj_setConst`` would recompute after a mass change (``body_subtreemass``,
``dof_invweight0``) are left at their nominal values: they only scale constraint regularisation.
Each draw comes from the task's seeded generator, so a run is reproducible by ``train.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from pipeline.robot.spec import RobotSpec
from pipeline.sim.backend import Backend
from pipeline.sim.config import RandomizationConfig, Switch


@dataclass
class EpisodeParams:
    """Per-env randomized values (all (E,) or (E, N)); the nominal values when a switch is off."""

    friction: np.ndarray
    mass_scale: np.ndarray  # (E, nbody)
    com_offset: np.ndarray  # (E, 3) torso
    kp_scale: np.ndarray  # (E, N)
    kd_scale: np.ndarray  # (E, N)
    motor_strength: np.ndarray  # (E, N)
    latency_steps: np.ndarray  # (E,) int, physics substeps of the old target before the new one applies
    calibration_offset: np.ndarray  # (E, N) rad: measured = true + offset
    obs_noise: np.ndarray  # (E,) noise level multiplier
    terrain: np.ndarray  # (E,) roughness amplitude, m

    def critic_vector(self, timestep: float) -> np.ndarray:
        """(E, 10 + N): what the critic sees of the randomization."""
        return np.concatenate(
            [
                self.friction[:, None],
                self.mass_scale[:, 1:].mean(1, keepdims=True),
                self.com_offset * 10.0,
                self.kp_scale.mean(1, keepdims=True),
                self.kd_scale.mean(1, keepdims=True),
                self.motor_strength.mean(1, keepdims=True),
                self.latency_steps[:, None] * timestep * 100.0,
                self.terrain[:, None] * 10.0,
                self.calibration_offset * 10.0,
            ],
            axis=1,
        )


def _draw(rng: np.random.Generator, sw: Switch, nominal: float, shape: tuple[int, ...]) -> np.ndarray:
    if not sw.enabled:
        return np.full(shape, nominal, dtype=np.float64)
    return rng.uniform(sw.range[0], sw.range[1], size=shape)


class Randomizer:
    """Samples :class:`EpisodeParams` for reset envs and writes the model-field ones into the backend."""

    def __init__(
        self, cfg: RandomizationConfig, robot: RobotSpec, backend: Backend, anchor_body: int
    ) -> None:
        self.cfg = cfg
        self.robot = robot
        self.backend = backend
        m = backend.model
        self.anchor_body = anchor_body
        self.timestep = float(m.opt.timestep)
        self.foot_geoms = np.array(
            [i for i in range(m.ngeom) if m.geom(i).name.endswith("_collision") and "_foot" in m.geom(i).name]
        )
        self.nominal_friction = float(m.geom_friction[self.foot_geoms[0], 0])
        self.nominal = {
            "body_mass": m.body_mass.copy(),
            "body_inertia": m.body_inertia.copy(),
            "body_ipos": m.body_ipos.copy(),
            "actuator_gainprm": m.actuator_gainprm.copy(),
            "actuator_biasprm": m.actuator_biasprm.copy(),
            "actuator_forcerange": m.actuator_forcerange.copy(),
        }
        self.terrain_geoms = np.array(
            [i for i in range(m.ngeom) if m.geom(i).name.startswith("terrain")], dtype=int
        )
        self.terrain_levels = m.hfield_size[:, 2].copy()
        self.has_terrain = self.terrain_geoms.size > 0
        e, n = backend.num_envs, robot.num_joints
        self.params = EpisodeParams(
            friction=np.full(e, self.nominal_friction),
            mass_scale=np.ones((e, m.nbody)),
            com_offset=np.zeros((e, 3)),
            kp_scale=np.ones((e, n)),
            kd_scale=np.ones((e, n)),
            motor_strength=np.ones((e, n)),
            latency_steps=np.zeros(e, dtype=np.int64),
            calibration_offset=np.zeros((e, n)),
            obs_noise=np.zeros(e),
            terrain=np.zeros(e),
        )
        self._level = np.zeros(e, dtype=np.int64)
        # fields become per-env only when their randomization is on (the others stay shared)
        self._fields = set()
        if cfg.friction.enabled:
            self._fields.add("geom_friction")
        if cfg.mass_scale.enabled:
            self._fields |= {"body_mass", "body_inertia"}
        if cfg.com_offset.enabled:
            self._fields.add("body_ipos")
        if cfg.kp_scale.enabled or cfg.kd_scale.enabled:
            self._fields |= {"actuator_gainprm", "actuator_biasprm"}
        if cfg.motor_strength.enabled:
            self._fields.add("actuator_forcerange")
        if cfg.terrain.enabled and self.has_terrain:
            self._fields |= {"geom_contype", "geom_conaffinity"}
        for f in sorted(self._fields):
            backend.param(f)

    def sample(self, ids: np.ndarray, rng: np.random.Generator) -> None:
        """Draw new parameters for envs ``ids`` and write them into the backend's per-env model fields."""
        c, p, k = self.cfg, self.params, len(ids)
        n, nb = self.robot.num_joints, self.backend.model.nbody
        p.friction[ids] = _draw(rng, c.friction, self.nominal_friction, (k,))
        p.mass_scale[ids] = _draw(rng, c.mass_scale, 1.0, (k, nb))
        p.com_offset[ids] = _draw(rng, c.com_offset, 0.0, (k, 3))
        p.kp_scale[ids] = _draw(rng, c.kp_scale, 1.0, (k, n))
        p.kd_scale[ids] = _draw(rng, c.kd_scale, 1.0, (k, n))
        p.motor_strength[ids] = _draw(rng, c.motor_strength, 1.0, (k, n))
        latency_s = _draw(rng, c.action_latency, 0.0, (k,))
        p.latency_steps[ids] = np.round(latency_s / self.timestep).astype(np.int64)
        p.calibration_offset[ids] = _draw(rng, c.calibration_offset, 0.0, (k, n))
        p.obs_noise[ids] = _draw(rng, c.obs_noise, 0.0, (k,))
        if self.has_terrain:  # snap the drawn amplitude to the nearest heightfield level
            amp = _draw(rng, c.terrain, 0.0, (k,))
            self._level[ids] = np.abs(amp[:, None] - self.terrain_levels[None, :]).argmin(1)
            p.terrain[ids] = self.terrain_levels[self._level[ids]]
        self._write(ids)

    def _write(self, ids: np.ndarray) -> None:
        b, p, nom = self.backend, self.params, self.nominal
        if "geom_friction" in self._fields:
            fr = b.param("geom_friction")
            fr[np.ix_(ids, self.foot_geoms, np.array([0]))] = p.friction[ids][:, None, None]
        if "body_mass" in self._fields:
            b.param("body_mass")[ids] = nom["body_mass"] * p.mass_scale[ids]
            b.param("body_inertia")[ids] = nom["body_inertia"] * p.mass_scale[ids][:, :, None]
        if "body_ipos" in self._fields:
            ipos = b.param("body_ipos")
            ipos[ids] = nom["body_ipos"]
            ipos[ids, self.anchor_body] += p.com_offset[ids]
        if "actuator_gainprm" in self._fields:
            g, bias = b.param("actuator_gainprm"), b.param("actuator_biasprm")
            g[ids, :, 0] = nom["actuator_gainprm"][:, 0] * p.kp_scale[ids]
            bias[ids, :, 1] = nom["actuator_biasprm"][:, 1] * p.kp_scale[ids]
            bias[ids, :, 2] = nom["actuator_biasprm"][:, 2] * p.kd_scale[ids]
        if "actuator_forcerange" in self._fields:
            b.param("actuator_forcerange")[ids] = (
                nom["actuator_forcerange"] * p.motor_strength[ids][:, :, None]
            )
        if "geom_contype" in self._fields:
            on = (np.arange(self.terrain_geoms.size)[None, :] == self._level[ids][:, None]).astype(np.int32)
            for name in ("geom_contype", "geom_conaffinity"):
                b.param(name)[np.ix_(ids, self.terrain_geoms)] = on


def switches(cfg: RandomizationConfig) -> dict[str, bool]:
    return {
        f.name: getattr(cfg, f.name).enabled for f in fields(cfg) if isinstance(getattr(cfg, f.name), Switch)
    }


__all__ = ["EpisodeParams", "Randomizer", "switches"]
