"""Batched simulator backends: N copies of one robot model stepped natively, with per-env model parameters.

The task code (pipeline/sim/task.py) talks only to :class:`Backend`: live ``(E, ...)`` numpy views of the
state (``qpos``, ``qvel``) and of derived fields at the *current* state (``xpos``, ``xquat``, ``cvel``,
``subtree_com``, ``cfrc_ext``, ``sensordata``, ``actuator_force``), one ``step(ctrl)`` per policy step taking a
control per physics substep, ``forward(ids)`` after writing states, ``hold_ctrl(ids, ctrl)`` at every reset
(a simulated command delay replays ``ctrl``, never the previous episode's commands), and ``param(name)`` for
per-env model parameters (domain randomization without recompiling). Evaluation's actuator model
(pipeline/evaluate/conditions.py) steps one physics step at a time with ``substep(ctrl)``. A GPU backend
(MuJoCo Warp / MJX) implements the same surface.

:class:`CpuBatch` is ``mujoco.batch.Batch`` (MuJoCo >= 4.0): the simulations run on ``nthread`` native
threads, bit-identical to a loop of ``mj_step`` over one MjData per env; a model field made per-env with
``Batch.expand`` costs nothing at step time (each simulation reads its own row).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import mujoco
import mujoco.batch
import numpy as np

from pipeline.robot.model import build_spec
from pipeline.robot.spec import RobotSpec

TERRAIN_SIZE_M = 40.0  # half-width of the heightfield, m
TERRAIN_RES = 321  # samples per side (0.25 m)
TERRAIN_LEVELS = 4  # roughness levels an env can draw from
IMU_SITE = "imu_in_pelvis"


def build_model(
    robot: RobotSpec,
    *,
    timestep: float,
    terrain: tuple[float, ...] = (),
    seed: int = 0,
    ctrl_history: int = 0,
) -> mujoco.MjModel:
    """The simulation model: robot.yaml's PD actuators, ``timestep``, a pelvis accelerometer (which makes
    MuJoCo compute ``cfrc_ext``, the contact forces on every body) and a floor.

    With ``ctrl_history`` > 0 every actuator keeps that many past controls (zero-order hold, no delay by
    default), so a per-env ``actuator_delay`` applies an action latency inside MuJoCo's own step
    (:meth:`CpuBatch.set_ctrl_delay`) and a policy step stays one native call.

    With ``terrain`` (amplitudes in m), the floor is one heightfield of random bumps per amplitude, named
    ``terrain<k>``; heightfield sizes are asset data that MuJoCo shares between simulations, so an env picks
    its roughness by enabling the collisions of one of them (per-env ``geom_contype``/``geom_conaffinity``).
    """
    spec = build_spec(robot, floor=not terrain)
    spec.option.timestep = timestep
    if ctrl_history:
        for a in spec.actuators:
            a.nsample, a.interp, a.delay = ctrl_history, 0, 0.0
    s = spec.add_sensor()
    s.name = "imu_acc"
    s.type = mujoco.mjtSensor.mjSENS_ACCELEROMETER
    s.objtype = mujoco.mjtObj.mjOBJ_SITE
    s.objname = IMU_SITE
    if terrain:
        pattern = np.random.default_rng(seed).uniform(0.0, 1.0, TERRAIN_RES * TERRAIN_RES).tolist()
        for k, amp in enumerate(terrain):
            hf = spec.add_hfield()
            hf.name = f"terrain{k}"
            hf.nrow = hf.ncol = TERRAIN_RES
            hf.size = [TERRAIN_SIZE_M, TERRAIN_SIZE_M, max(float(amp), 1e-4), 0.1]
            hf.userdata = pattern
            g = spec.worldbody.add_geom()
            g.name = f"terrain{k}"
            g.type = mujoco.mjtGeom.mjGEOM_HFIELD
            g.hfieldname = f"terrain{k}"
            g.contype = g.conaffinity = 1 if k == 0 else 0
        spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    return spec.compile()


class Backend(ABC):
    """A batch of ``num_envs`` simulations of one model (see the module docstring)."""

    model: mujoco.MjModel
    num_envs: int
    qpos: np.ndarray  # (E, nq) live state
    qvel: np.ndarray  # (E, nv)
    xpos: np.ndarray  # (E, nbody, 3) world body positions at the current state
    xquat: np.ndarray  # (E, nbody, 4)
    cvel: np.ndarray  # (E, nbody, 6) [ang, lin] about subtree_com[:, 0 root]
    subtree_com: np.ndarray  # (E, nbody, 3)
    cfrc_ext: np.ndarray  # (E, nbody, 6) contact wrench on each body, from the last substep
    sensordata: np.ndarray  # (E, nsensordata)
    actuator_force: np.ndarray  # (E, nu) actuator forces of the last physics step, N m for joint motors

    @abstractmethod
    def step(self, ctrl: np.ndarray) -> None:
        """Advance every env by ``ctrl.shape[1]`` physics steps; ``ctrl`` (E, nsub, nu) is each substep's."""

    @abstractmethod
    def substep(self, ctrl: np.ndarray, *, derived: bool = True) -> None:
        """Advance every env by one physics step with ``ctrl`` (E, nu). The state and ``actuator_force`` are
        always current; with ``derived`` False the derived fields (``xpos`` ...) may be left stale, which is
        cheaper when another substep follows before anyone reads them."""

    @abstractmethod
    def forward(self, ids: np.ndarray | None = None) -> None:
        """Recompute the derived fields of ``ids`` after their state was written (e.g. at reset)."""

    native_delay: bool = False  # set_ctrl_delay is available (the backend delays commands itself)

    def set_ctrl_delay(self, ids: np.ndarray, substeps: np.ndarray) -> None:
        """Envs ``ids`` apply each control ``substeps`` (E_ids,) physics steps after it is written."""
        raise NotImplementedError

    @abstractmethod
    def hold_ctrl(self, ids: np.ndarray, ctrl: np.ndarray) -> None:
        """Envs ``ids`` behave as if ``ctrl`` (E_ids, nu) had been applied so far: every command delay the
        backend simulates replays ``ctrl`` until newer commands come through, never commands sent before.
        The task calls it at every reset; a backend that delays nothing has nothing to clear."""

    @abstractmethod
    def param(self, name: str) -> np.ndarray:
        """Live writable per-env values (E, ...) of the MjModel field ``name`` (e.g. ``body_mass``)."""

    @abstractmethod
    def env_model(self, i: int) -> mujoco.MjModel:
        """A standalone MjModel of env i with its per-env parameters (for tests, rendering, replay)."""

    def body_lin_vel_w(self, body_ids: np.ndarray) -> np.ndarray:
        """(E, K, 3) world linear velocity of the body origins (from cvel, as mj_objectVelocity)."""
        c = self.cvel[:, body_ids]
        arm = self.xpos[:, body_ids] - self.subtree_com[:, 1:2]
        w = c[..., :3]
        cross = np.stack(
            [
                w[..., 1] * arm[..., 2] - w[..., 2] * arm[..., 1],
                w[..., 2] * arm[..., 0] - w[..., 0] * arm[..., 2],
                w[..., 0] * arm[..., 1] - w[..., 1] * arm[..., 0],
            ],
            axis=-1,
        )
        return c[..., 3:] + cross

    def body_ang_vel_w(self, body_ids: np.ndarray) -> np.ndarray:
        return self.cvel[:, body_ids, :3]


class CpuBatch(Backend):
    """``mujoco.batch.Batch`` on CPU threads."""

    def __init__(
        self, model: mujoco.MjModel, num_envs: int, *, nthread: int = 2, persistent: bool = True
    ) -> None:
        self.model = model
        self.num_envs = num_envs
        # persistent: one MjData per env, so the positions/velocities computed for the observations after the
        # last substep are reused by the next step instead of being computed twice
        self._batch = mujoco.batch.Batch(model, num_envs, nthread=nthread, persistent=persistent)
        b = self._batch
        self.qpos, self.qvel, self.ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
        self.xpos, self.xquat, self.cvel = b.bind("xpos"), b.bind("xquat"), b.bind("cvel")
        self.subtree_com, self.cfrc_ext = b.bind("subtree_com"), b.bind("cfrc_ext")
        self.sensordata, self.actuator_force = b.bind("sensordata"), b.bind("actuator_force")
        self._params: dict[str, np.ndarray] = {}
        hist = model.actuator_history[:, 0]
        self.native_delay = bool(model.nu and hist.min() > 0 and hist.min() == hist.max())
        if self.native_delay:
            # history row of an actuator: [user, cursor, times (nsample), values (nsample)]
            self._history = b.bind("history")
            adr = model.actuator_historyadr[:, None] + 2 + hist.max() + np.arange(hist.max())[None, :]
            self._hist_values = adr  # (nu, nsample) indices of the stored controls

    def set_ctrl_delay(self, ids: np.ndarray, substeps: np.ndarray) -> None:
        dt = float(self.model.opt.timestep)
        # half a step short of the whole substeps, so the zero-order hold never depends on rounding of times
        delay = np.where(substeps > 0, (np.asarray(substeps) - 0.5) * dt, 0.0)
        self.param("actuator_delay")[ids] = delay[:, None]

    def hold_ctrl(self, ids: np.ndarray, ctrl: np.ndarray) -> None:
        if not self.native_delay:
            return
        # every stored sample of the actuators' history (older times too) becomes ``ctrl``
        self._history[np.ix_(ids, self._hist_values.ravel())] = np.repeat(
            ctrl, self._hist_values.shape[1], axis=1
        )

    def step(self, ctrl: np.ndarray) -> None:
        nsub = ctrl.shape[1]
        if ctrl.strides[1] == 0:  # one control for every substep (broadcast): one native call
            self.ctrl[:] = ctrl[:, 0]
            self._batch.step(nstep=nsub, stage=mujoco.mjtStage.mjSTAGE_VEL)
            return
        # consecutive substeps whose controls are equal in every env run as one native call
        k = 0
        while k < nsub:
            n = 1
            while k + n < nsub and np.array_equal(ctrl[:, k + n], ctrl[:, k]):
                n += 1
            self.ctrl[:] = ctrl[:, k]
            last = k + n == nsub
            # the last call also computes positions/velocities at the new state (observations)
            self._batch.step(
                nstep=n, stage=mujoco.mjtStage.mjSTAGE_VEL if last else mujoco.mjtStage.mjSTAGE_NONE
            )
            k += n

    def substep(self, ctrl: np.ndarray, *, derived: bool = True) -> None:
        self.ctrl[:] = ctrl
        self._batch.step(
            nstep=1, stage=mujoco.mjtStage.mjSTAGE_VEL if derived else mujoco.mjtStage.mjSTAGE_NONE
        )

    def forward(self, ids: np.ndarray | None = None) -> None:
        self._batch.forward(ids, stage=mujoco.mjtStage.mjSTAGE_VEL)

    def param(self, name: str) -> np.ndarray:
        if name not in self._params:
            self._params[name] = self._batch.expand(name)
        return self._params[name]

    def env_model(self, i: int) -> mujoco.MjModel:
        return self._batch.get_model(i)
