"""Typed configuration of the tracking task and its training (params.yaml, section ``train:``).

Nested frozen dataclasses; :func:`from_dict` rejects unknown keys, checks types and validates ranges, so a bad
params value is an :class:`InputError` naming the key before any training starts. Every default here is the
default of params.yaml.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import InputError


@dataclass(frozen=True)
class SimConfig:
    timestep: float = 0.005  # physics step, s
    decimation: int = 4  # physics steps per policy step (0.005 * 4 = 50 Hz)
    nthread: int = 2  # native threads of the batched backend
    backend: str = "cpu"


@dataclass(frozen=True)
class RewardConfig:
    """Weights (w_*) and sigmas (s_*) of the exp(-err^2 / sigma^2) tracking terms and the regularisers."""

    w_anchor_pos: float = 0.5
    s_anchor_pos: float = 0.3  # m
    w_anchor_ori: float = 0.5
    s_anchor_ori: float = 0.4  # rad
    w_body_pos: float = 1.0
    s_body_pos: float = 0.3  # m
    w_body_ori: float = 1.0
    s_body_ori: float = 0.4  # rad
    w_body_lin_vel: float = 1.0
    s_body_lin_vel: float = 1.0  # m/s
    w_body_ang_vel: float = 1.0
    s_body_ang_vel: float = 3.14  # rad/s
    w_action_rate: float = -0.1
    w_joint_limit: float = -10.0
    w_undesired_contacts: float = -0.1
    contact_threshold: float = 1.0  # N


@dataclass(frozen=True)
class TerminationConfig:
    anchor_height: float = 0.25  # |z - z_ref| of the anchor, m
    anchor_ori: float = 0.8  # |gravity_z - gravity_z_ref| in the anchor frame
    end_effector_height: float = 0.25  # |z - z_ref| of feet and hands, m


@dataclass(frozen=True)
class SamplingConfig:
    """Adaptive sampling of start phases: bins of ``bin_s`` seconds weighted by their failure rate."""

    adaptive: bool = True
    bin_s: float = 0.5
    uniform_ratio: float = 0.1  # share of uniform probability mixed in
    alpha: float = 0.01  # EMA rate of the per-bin failure estimate
    # share of episodes that start at their clip's first frame standing still, as the deployed robot does
    # after its soft start (the others start anywhere with the reference's velocities)
    rest_start: float = 0.0


@dataclass(frozen=True)
class Switch:
    """One randomization: on/off and its range [low, high]."""

    enabled: bool = True
    range: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class RandomizationConfig:
    friction: Switch = Switch(True, (0.4, 1.2))  # foot sliding friction
    mass_scale: Switch = Switch(True, (0.9, 1.1))  # per-link mass (and inertia) scale
    com_offset: Switch = Switch(True, (-0.03, 0.03))  # torso CoM offset per axis, m
    kp_scale: Switch = Switch(True, (0.9, 1.1))  # per-joint PD stiffness scale (kd scaled alike, separately)
    kd_scale: Switch = Switch(True, (0.9, 1.1))
    motor_strength: Switch = Switch(True, (0.9, 1.1))  # per-joint effort-limit scale
    action_latency: Switch = Switch(True, (0.0, 0.01))  # s, applied in whole physics steps
    obs_noise: Switch = Switch(True, (0.0, 1.0))  # multiplier of the per-term noise scales below
    push_velocity: Switch = Switch(True, (0.0, 0.5))  # m/s root velocity kick, per axis (x, y)
    push_interval: tuple[float, float] = (1.0, 3.0)  # s between pushes
    push_ramp: float = 0.5  # share of the training budget over which the push range grows from 0 to full
    calibration_offset: Switch = Switch(True, (-0.01, 0.01))  # rad, per joint encoder offset
    terrain: Switch = Switch(False, (0.0, 0.03))  # heightfield roughness amplitude, m


@dataclass(frozen=True)
class NoiseConfig:
    """Uniform observation noise half-widths per actor term (scaled by randomization.obs_noise), and of the
    teacher's anchor position error (``anchor_pos``, m)."""

    anchor_pos: float = 0.05
    anchor_ori_error: float = 0.05
    base_ang_vel_b: float = 0.2
    projected_gravity_b: float = 0.05
    joint_pos_rel: float = 0.01
    joint_vel: float = 0.5


@dataclass(frozen=True)
class PPOConfig:
    num_steps_per_env: int = 24
    num_learning_epochs: int = 3
    num_mini_batches: int = 4
    learning_rate: float = 1.0e-3
    # fixed | adaptive (rate from desired_kl) | linear (from learning_rate to final_learning_rate over the budget)
    schedule: str = "linear"
    final_learning_rate: float = 1.0e-4
    desired_kl: float = 0.01
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    entropy_coef: float = 0.005
    value_loss_coef: float = 1.0
    max_grad_norm: float = 1.0
    init_noise_std: float = 0.5
    actor_hidden: tuple[int, ...] = (256, 128, 128)
    critic_hidden: tuple[int, ...] = (256, 128, 128)
    residual: bool = True  # actor output is a residual around the reference joints (pipeline/learn/models.py)
    symmetry: bool = True  # left-right mirrored copies of every mini-batch (pipeline/sim/symmetry.py)


@dataclass(frozen=True)
class BudgetConfig:
    """Training stops at whichever limit comes first (0 = no limit on that one; not both 0). With a step
    budget the schedules (learning rate, push ramp, selection start) follow the steps, so a run repeats step for
    step on any machine that finishes it (bit for bit on the same machine); the minutes then only stop a slower
    machine early. With minutes alone they follow the wall clock, and a faster machine trains for more steps."""

    minutes: float = 30.0
    env_steps: int = 4_000_000


@dataclass(frozen=True)
class EvalConfig:
    min_episode_s: float = 10.0  # evaluation episodes cover at least this much reference (cyclic clips loop)
    episodes_per_clip: int = 16
    randomized: bool = True  # evaluate under the training randomization


@dataclass(frozen=True)
class SelectConfig:
    """Best-checkpoint selection: from ``start`` (share of the budget) on, every ``every`` iterations and at the
    end, the deterministic actor is scored on ``episodes_per_clip`` episodes per clip in the evaluation's
    condition (``eval``), on its own seed; ``policy.pt`` is the best scored (success rate, then survival,
    then MPKPE).
    ``every: 0`` keeps the final iterate."""

    every: int = 50
    start: float = 0.5
    episodes_per_clip: int = 16


@dataclass(frozen=True)
class TrainConfig:
    clips: tuple[str, ...] = ("walk",)
    loop: tuple[str, ...] = ("walk",)  # clips looped (root advancing) even if their source lacks cyclic: true
    robot: str = "g1"
    seed: int = 0
    num_envs: int = 128
    episode_s: float = 10.0
    # the teacher's actor also reads the anchor's position error (observation group ``anchor_pos``): a robot
    # needs state estimation for it, so the student never sees it. Off by default: with reward.w_anchor_pos 0.5
    # the teacher barely uses it; weighed more, it does, but tracks fewer episodes (README's numbers)
    actor_anchor_pos: bool = False
    sim: SimConfig = SimConfig()
    reward: RewardConfig = RewardConfig()
    termination: TerminationConfig = TerminationConfig()
    sampling: SamplingConfig = SamplingConfig()
    randomization: RandomizationConfig = RandomizationConfig()
    noise: NoiseConfig = NoiseConfig()
    ppo: PPOConfig = PPOConfig()
    budget: BudgetConfig = BudgetConfig()
    eval: EvalConfig = EvalConfig()
    select: SelectConfig = SelectConfig()
    checkpoint_every: int = 25  # iterations

    @property
    def control_dt(self) -> float:
        return self.sim.timestep * self.sim.decimation


T = TypeVar("T")


def _convert(tp: Any, value: Any, key: str, where: str | Path) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(where, f"'{key}' must be a mapping")
        return _build(tp, value, key, where)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(where, f"'{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(where, f"'{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(where, f"'{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(where, f"'{key}' must be a string, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise InputError(where, f"'{key}' must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]", where) for i, v in enumerate(value))
        if len(value) != len(args):
            raise InputError(where, f"'{key}' must have {len(args)} items, got {len(value)}")
        return tuple(
            _convert(a, v, f"{key}[{i}]", where) for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict or tp is dict:
        return dict(value)
    if isinstance(tp, types.UnionType):
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")


def _build(cls: type[T], raw: dict[str, Any], prefix: str, where: str | Path) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - names)
    if unknown:
        raise InputError(where, f"unknown key(s) {', '.join(prefix + '.' + k for k in unknown)}")
    kwargs = {k: _convert(hints[k], v, f"{prefix}.{k}", where) for k, v in raw.items()}
    return cls(**kwargs)


def _positive(where: str | Path, **values: float) -> None:
    for k, v in values.items():
        if not v > 0:
            raise InputError(where, f"train.{k} must be > 0, got {v}")


def validate(cfg: TrainConfig, where: str | Path = "params.yaml") -> TrainConfig:
    """Range checks that types alone cannot express; raises InputError."""
    if not cfg.clips:
        raise InputError(where, "train.clips is empty: name at least one clip (data/robot/<clip>.npz)")
    _positive(
        where,
        num_envs=cfg.num_envs,
        episode_s=cfg.episode_s,
        **{
            "sim.timestep": cfg.sim.timestep,
            "sim.decimation": cfg.sim.decimation,
            "sim.nthread": cfg.sim.nthread,
        },
    )
    if cfg.sim.timestep > 0.01:
        raise InputError(
            where, f"train.sim.timestep {cfg.sim.timestep} s is too coarse for the PD servos (<= 0.01)"
        )
    if cfg.sim.backend != "cpu":
        raise InputError(where, f"train.sim.backend '{cfg.sim.backend}' is not available (known: cpu)")
    r = cfg.reward
    for k in ("anchor_pos", "anchor_ori", "body_pos", "body_ori", "body_lin_vel", "body_ang_vel"):
        _positive(where, **{f"reward.s_{k}": getattr(r, f"s_{k}")})
        if getattr(r, f"w_{k}") < 0:
            raise InputError(where, f"train.reward.w_{k} must be >= 0 (it weighs a tracking reward)")
    for k in ("w_action_rate", "w_joint_limit", "w_undesired_contacts"):
        if getattr(r, k) > 0:
            raise InputError(where, f"train.reward.{k} must be <= 0 (it is a penalty)")
    t = cfg.termination
    _positive(
        where,
        **{f"termination.{k}": getattr(t, k) for k in ("anchor_height", "anchor_ori", "end_effector_height")},
    )
    s = cfg.sampling
    _positive(where, **{"sampling.bin_s": s.bin_s, "sampling.alpha": s.alpha})
    for key in ("uniform_ratio", "rest_start"):
        if not 0 <= getattr(s, key) <= 1:
            raise InputError(where, f"train.sampling.{key} must be in [0, 1], got {getattr(s, key)}")
    rnd = cfg.randomization
    for f in dataclasses.fields(rnd):
        sw = getattr(rnd, f.name)
        if not isinstance(sw, Switch | tuple):
            continue
        lo, hi = sw.range if isinstance(sw, Switch) else sw
        if not lo <= hi:
            raise InputError(where, f"train.randomization.{f.name}: range low {lo} > high {hi}")
    for name in ("friction", "mass_scale", "kp_scale", "kd_scale", "motor_strength"):
        if getattr(rnd, name).range[0] <= 0:
            raise InputError(where, f"train.randomization.{name}.range must be > 0")
    for name in ("action_latency", "obs_noise", "push_velocity", "terrain"):
        if getattr(rnd, name).range[0] < 0:
            raise InputError(where, f"train.randomization.{name}.range must be >= 0")
    if rnd.action_latency.range[1] > cfg.control_dt:
        raise InputError(where, "train.randomization.action_latency must not exceed one policy step")
    if rnd.push_interval[0] <= 0:
        raise InputError(where, "train.randomization.push_interval must be > 0")
    if not 0 <= rnd.push_ramp <= 1:
        raise InputError(where, f"train.randomization.push_ramp must be in [0, 1], got {rnd.push_ramp}")
    p = cfg.ppo
    _positive(
        where,
        **{
            f"ppo.{k}": getattr(p, k)
            for k in (
                "num_steps_per_env",
                "num_learning_epochs",
                "num_mini_batches",
                "learning_rate",
                "init_noise_std",
            )
        },
    )
    if p.schedule not in ("fixed", "adaptive", "linear"):
        raise InputError(
            where, f"train.ppo.schedule must be 'fixed', 'adaptive' or 'linear', got '{p.schedule}'"
        )
    _positive(where, **{"ppo.final_learning_rate": p.final_learning_rate})
    if not (0 < p.gamma <= 1 and 0 <= p.lam <= 1):
        raise InputError(where, "train.ppo.gamma must be in (0, 1] and lam in [0, 1]")
    if cfg.num_envs * p.num_steps_per_env < p.num_mini_batches:
        raise InputError(
            where, "train.ppo.num_mini_batches exceeds the rollout size num_envs * num_steps_per_env"
        )
    b = cfg.budget
    if b.minutes < 0 or b.env_steps < 0 or (b.minutes == 0 and b.env_steps == 0):
        raise InputError(where, "train.budget needs minutes > 0 or env_steps > 0 (neither negative)")
    _positive(
        where,
        **{
            "eval.min_episode_s": cfg.eval.min_episode_s,
            "eval.episodes_per_clip": cfg.eval.episodes_per_clip,
        },
    )
    _positive(where, checkpoint_every=cfg.checkpoint_every)
    sel = cfg.select
    if sel.every < 0 or not 0 <= sel.start <= 1:
        raise InputError(where, f"train.select needs every >= 0 and start in [0, 1], got {sel}")
    _positive(where, **{"select.episodes_per_clip": sel.episodes_per_clip})
    return cfg


def from_dict(raw: dict[str, Any] | None, where: str | Path = "params.yaml") -> TrainConfig:
    """Build and validate a TrainConfig from the ``train:`` mapping (missing keys take the defaults)."""
    cfg = _build(TrainConfig, dict(raw or {}), "train", where)
    return validate(cfg, where)


def nominal(cfg: TrainConfig) -> TrainConfig:
    """The same config with every randomization switched off (nominal model, no noise, no pushes)."""
    rnd = cfg.randomization
    off = {
        f.name: dataclasses.replace(getattr(rnd, f.name), enabled=False)
        for f in dataclasses.fields(RandomizationConfig)
        if isinstance(getattr(rnd, f.name), Switch)
    }
    return dataclasses.replace(cfg, randomization=dataclasses.replace(rnd, **off))


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy with top-level or dotted changes, e.g. ``replace(cfg, **{"sim.nthread": 1})``; revalidated."""
    nested: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for k, v in changes.items():
        if "." in k:
            head, tail = k.split(".", 1)
            nested.setdefault(head, {})[tail] = v
        else:
            top[k] = v
    for head, sub in nested.items():
        top[head] = dataclasses.replace(getattr(cfg, head), **sub)
    return validate(dataclasses.replace(cfg, **top), "<config>")
