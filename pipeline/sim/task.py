"""The BeyondMimic-style motion-tracking task over a batched backend (numpy, whole batches, no per-env loops).

API (used by pipeline/learn and by distillation)::

    env = TrackingEnv(cfg, motions, names)          # cfg: pipeline.sim.config.TrainConfig
    obs = env.reset()                   # {"actor": (E, Da), "anchor_pos": (E, 3), "critic": (E, Dc)} float32
    obs, reward, terminated, time_out, info = env.step(actions)   # actions (E, N) raw policy outputs
    env.num_envs, env.num_actions, env.actor_layout, env.obs_sizes, env.max_episode_steps
    env.set_eval(clips, steps)                      # deterministic starts at frame 0 of `clips`, fixed lengths

Joint targets are ``default + action_scale * action`` (robot.yaml), held through ``decimation`` physics steps
of the position servos; with action latency the previous target stays on for the first substeps (after a reset,
the target that holds the episode's first reference frame, as the deployment's soft start leaves the robot;
the backend's own delays are cleared through ``Backend.hold_ctrl``). Envs that
terminate or time out are reset inside ``step`` (the returned obs are the new episodes'); ``info`` carries
per-env ``mpkpe_m`` (global), ``mpkpe_local_m`` (on the robot's anchor), ``joint_err`` and the anchor's
drift (``heading_err``, ``drift_along_m``, ``drift_across_m``: :func:`pipeline.sim.terms.drift`) of the step
before any reset, and the reward terms' batch means.
The actor observation is exactly :func:`pipeline.deploy.observation.actor_observation` (+ training noise);
``anchor_pos`` is the reference anchor's position in the robot anchor's frame (+ noise), which the teacher's
actor reads with ``train.actor_anchor_pos`` (it needs state estimation on a robot; the student never reads it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.deploy import observation as dob
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot
from pipeline.sim import terms
from pipeline.sim.backend import TERRAIN_LEVELS, Backend, CpuBatch, build_model
from pipeline.sim.config import TrainConfig
from pipeline.sim.randomization import Randomizer
from pipeline.sim.reference import AdaptiveSampler, MotionReference


class TrackingEnv:
    """See the module docstring."""

    def __init__(
        self,
        cfg: TrainConfig,
        motions: Sequence[RobotMotion],
        names: Sequence[str],
        *,
        num_envs: int | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.cfg = cfg
        self.robot = load_robot(cfg.robot)
        rnd = cfg.randomization
        if backend is None:
            levels = tuple(np.linspace(*rnd.terrain.range, TERRAIN_LEVELS)) if rnd.terrain.enabled else ()
            # the latency runs as MuJoCo actuator delays: a history of decimation + 1 controls covers one step
            model = build_model(
                self.robot,
                timestep=cfg.sim.timestep,
                terrain=levels,
                seed=cfg.seed,
                ctrl_history=cfg.sim.decimation + 1 if rnd.action_latency.enabled else 0,
            )
            backend = CpuBatch(model, num_envs or cfg.num_envs, nthread=cfg.sim.nthread)
        self.backend = backend
        m = backend.model
        self.num_envs = e = backend.num_envs
        self.num_actions = n = self.robot.num_joints
        self.dt = cfg.control_dt
        body_names = tuple(m.body(i).name for i in range(1, m.nbody))
        self.ref = MotionReference(motions, names, self.dt, self.robot, body_names)
        bid = {name: i + 1 for i, name in enumerate(body_names)}  # model body ids
        b = self.robot.bodies
        self.pelvis = bid[b["pelvis"]]
        self.anchor = bid[b["anchor"]]
        self.tracked = np.array([bid[x] for x in b["tracked"]])
        self.end_effectors = np.array([bid[x] for x in (*b["feet"], *b["hands"])])
        self.feet = np.array([bid[x] for x in b["feet"]])
        allowed = {*b["feet"], *b["hands"]}
        self.undesired = np.array([i for name, i in bid.items() if name not in allowed])
        # the reference carries only the bodies the terms use; r_* index them in the reference's arrays
        need = np.concatenate([[self.pelvis, self.anchor], self.tracked, self.end_effectors]) - 1
        self.ref_bodies = np.unique(need)
        pos = {int(b): i for i, b in enumerate(self.ref_bodies)}
        self.r_root, self.r_anchor = pos[self.pelvis - 1], pos[self.anchor - 1]
        self.r_tracked = np.array([pos[int(i) - 1] for i in self.tracked])
        self.r_ee = np.array([pos[int(i) - 1] for i in self.end_effectors])
        self.default = self.robot.default_pos
        self.action_scale = self.robot.action_scale
        lo, hi = m.jnt_range[1:, 0], m.jnt_range[1:, 1]
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        # joint-limit penalty outside 90% of the range, widened to what the reference itself uses
        self.soft_lo = np.minimum(mid - 0.9 * half, self.ref.joint_pos.min(0))
        self.soft_hi = np.maximum(mid + 0.9 * half, self.ref.joint_pos.max(0))
        self.actor_layout = dob.actor_layout(n)
        self.noise_width = self._noise_width()
        self.rng = np.random.default_rng(cfg.seed)
        self.randomizer = Randomizer(rnd, self.robot, backend, self.anchor)
        s = cfg.sampling
        self.sampler = AdaptiveSampler(self.ref, s.bin_s, s.uniform_ratio, s.alpha, s.adaptive, self.rng)
        self.max_episode_steps = round(cfg.episode_s / self.dt)
        # per-env episode state
        self.clip = np.zeros(e, dtype=np.int64)
        self.start = np.zeros(e, dtype=np.int64)
        self.steps = np.zeros(e, dtype=np.int64)
        self.limit = np.full(e, self.max_episode_steps, dtype=np.int64)
        self.last_action = np.zeros((e, n))
        self.prev_ctrl = np.tile(self.default, (e, 1))
        self.next_push = np.zeros(e)
        self.push_scale = 1.0  # training's curriculum scales the push range (randomization.push_ramp)
        self._eval: tuple[np.ndarray, np.ndarray] | None = None
        self.obs: dict[str, np.ndarray] = {}

    # ---- layout ------------------------------------------------------------------------------------------

    def _noise_width(self) -> np.ndarray:
        widths = []
        for t in self.actor_layout:
            w = getattr(self.cfg.noise, t.name, 0.0)
            widths.append(np.full(t.size, w))
        return np.concatenate(widths)

    @property
    def obs_sizes(self) -> dict[str, int]:
        return {k: v.shape[1] for k, v in self.obs.items()}

    # ---- episodes ----------------------------------------------------------------------------------------

    def set_eval(self, clips: np.ndarray, steps: np.ndarray) -> None:
        """Evaluation: env i replays clip ``clips[i]`` from frame 0 for ``steps[i]`` policy steps (no adaptive
        sampling). Call :meth:`reset` afterwards."""
        self._eval = (np.asarray(clips, dtype=np.int64), np.asarray(steps, dtype=np.int64))

    def reset(self) -> dict[str, np.ndarray]:
        self._reset(np.arange(self.num_envs))
        self.obs = self._observe(self._reference())
        return self.obs

    def _reset(self, ids: np.ndarray) -> None:
        if ids.size == 0:
            return
        if self._eval is not None:
            clip, frame = self._eval[0][ids], np.zeros(ids.size, dtype=np.int64)
            self.limit[ids] = self._eval[1][ids]
            rest = np.zeros(ids.size, dtype=bool)
        else:
            clip, frame = self.sampler.sample(ids.size)
            self.limit[ids] = self.max_episode_steps
            rest = self.rng.random(ids.size) < self.cfg.sampling.rest_start
            frame = np.where(rest, 0, frame)
        self.clip[ids], self.start[ids], self.steps[ids] = clip, frame, 0
        self.randomizer.sample(ids, self.rng)
        root = np.array([self.pelvis - 1])
        ref = self.ref.at(clip, frame, root)
        be = self.backend
        root_quat = ref["body_quat_w"][:, 0]
        be.qpos[ids, :3] = ref["body_pos_w"][:, 0]
        be.qpos[ids, 3:7] = root_quat
        be.qpos[ids, 7:] = ref["joint_pos"]
        be.qvel[ids, :3] = ref["body_lin_vel_w"][:, 0]
        be.qvel[ids, 3:6] = dob.quat_rotate_inv(root_quat, ref["body_ang_vel_w"][:, 0])
        be.qvel[ids, 6:] = ref["joint_vel"]
        be.qvel[ids[rest]] = 0.0
        # the action that holds the reference pose, so the first action-rate penalty is not an artefact
        self.last_action[ids] = (ref["joint_pos"] - self.default) / self.action_scale
        # a new episode starts as a robot that has been holding that pose: whatever the action latency delays
        # (here or inside the backend) is this target, never the previous episode's last commands
        self.prev_ctrl[ids] = ref["joint_pos"] - self.randomizer.params.calibration_offset[ids]
        if be.native_delay:
            be.set_ctrl_delay(ids, self.randomizer.params.latency_steps[ids])
        be.hold_ctrl(ids, self.prev_ctrl[ids])
        lo, hi = self.cfg.randomization.push_interval
        self.next_push[ids] = self.rng.uniform(lo, hi, ids.size)
        be.forward(ids)

    def _reference(self, ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The current reference of every env (or of ``ids``), bodies :attr:`ref_bodies` (index with r_*)."""
        if ids is None:
            return self.ref.at(self.clip, self.start + self.steps, self.ref_bodies)
        return self.ref.at(self.clip[ids], self.start[ids] + self.steps[ids], self.ref_bodies)

    # ---- stepping ----------------------------------------------------------------------------------------

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        cfg, be, p = self.cfg, self.backend, self.randomizer.params
        actions = np.asarray(actions, dtype=np.float64)
        ctrl = self.default + self.action_scale * actions - p.calibration_offset
        dec = cfg.sim.decimation
        if be.native_delay:  # the actuators' own delay holds the previous target for the latency substeps
            seq = np.broadcast_to(ctrl[:, None, :], (ctrl.shape[0], dec, ctrl.shape[1]))
        else:
            sub = np.arange(dec)[None, :, None]
            seq = np.where(sub < p.latency_steps[:, None, None], self.prev_ctrl[:, None, :], ctrl[:, None, :])
        be.step(seq)
        self.prev_ctrl = ctrl
        self.steps += 1
        self._push()
        ref = self._reference()
        state = terms.robot_state(be, self.anchor, self.pelvis, self.tracked)
        rel = terms.relative_reference(ref, state, self.r_anchor, self.r_tracked)
        rew, parts = terms.rewards(cfg.reward, state, ref, rel, self, actions)
        self.last_action = actions
        terminated = terms.terminations(cfg.termination, state, ref, self)
        time_out = (self.steps >= self.limit) | ref["done"]
        time_out &= ~terminated
        mpkpe, local = terms.tracking_errors(ref, state, self.r_tracked, rel[0])
        info = {
            "mpkpe_m": mpkpe,
            "mpkpe_local_m": local,
            "joint_err": np.abs(state["joint_pos"] - ref["joint_pos"]).mean(1),
            **terms.drift(ref, state, self.r_anchor),
            **{f"reward/{k}": np.asarray(v.mean()) for k, v in parts.items()},
        }
        done = terminated | time_out
        ids = np.flatnonzero(done)
        if ids.size and self._eval is None:
            self.sampler.update(self.clip[ids], self.start[ids] + self.steps[ids], terminated[ids])
        info["episode_steps"] = self.steps.copy()
        self._reset(ids)
        if ids.size:  # the new episodes' first frames
            new = self._reference(ids)
            for k, v in new.items():
                ref[k][ids] = v
        self.obs = self._observe(ref)
        return self.obs, rew * self.dt, terminated, time_out, info

    def _push(self) -> None:
        sw = self.cfg.randomization.push_velocity
        if not sw.enabled:
            return
        t = self.steps * self.dt
        ids = np.flatnonzero(t >= self.next_push)
        if ids.size == 0:
            return
        lo, hi = sw.range
        mag = self.rng.uniform(lo, hi, (ids.size, 2)) * self.rng.choice([-1.0, 1.0], (ids.size, 2))
        mag *= self.push_scale
        self.backend.qvel[ids, :2] += mag
        a, b = self.cfg.randomization.push_interval
        self.next_push[ids] = t[ids] + self.rng.uniform(a, b, ids.size)

    # ---- observations ------------------------------------------------------------------------------------

    def _observe(self, ref: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        be, p = self.backend, self.randomizer.params
        q = be.qpos[:, 7:] + p.calibration_offset
        base_quat = be.qpos[:, 3:7]
        actor = dob.actor_observation(
            ref_joint_pos=ref["joint_pos"],
            ref_joint_vel=ref["joint_vel"],
            ref_anchor_quat_w=ref["body_quat_w"][:, self.r_anchor],
            anchor_quat_w=be.xquat[:, self.anchor],
            base_quat_w=base_quat,
            base_ang_vel_b=be.qvel[:, 3:6],
            joint_pos=q,
            joint_vel=be.qvel[:, 6:],
            default_joint_pos=self.default,
            last_action=self.last_action,
            layout=self.actor_layout,
        )
        anchor_pos = clean_anchor_pos = terms.anchor_pos_error(self, ref)
        if self.cfg.randomization.obs_noise.enabled:
            noise = self.rng.uniform(-1.0, 1.0, actor.shape) * self.noise_width * p.obs_noise[:, None]
            actor = actor + noise.astype(np.float32)
            width = self.cfg.noise.anchor_pos * p.obs_noise[:, None]
            anchor_pos = anchor_pos + self.rng.uniform(-1.0, 1.0, anchor_pos.shape) * width
        critic = terms.critic_observation(self, ref, clean_anchor_pos)
        return {
            "actor": actor,
            "anchor_pos": anchor_pos.astype(np.float32),
            "critic": critic.astype(np.float32),
        }
