"""Teacher -> student: DAgger-style distillation with rsl-rl-lib, an optional PPO fine-tune, or RMA.

``distill(dcfg, tcfg, motions, names, teacher_path, out_dir)`` writes ``out_dir/student.pt`` (see
pipeline/learn/student.py), ``curves.csv`` (one row per iteration) and returns a summary dict.

- ``method: distill`` (default): rsl-rl-lib's ``Distillation`` algorithm (``DistillationRunner`` construction)
  with ``obs_groups = {"student": ["student"], "teacher": [the teacher's groups: ["actor"], or ["actor",
  "anchor_pos"] with train.actor_anchor_pos]}``. The student acts in the environment (stochastic, small fixed
  std) and is regressed onto the teacher's action at every visited state: DAgger with
  beta = 0. Optionally ``finetune_iterations`` of rsl-rl PPO on the student afterwards (actor = the distilled
  student, critic on the privileged ``critic`` group, trained from scratch; a short warm-up updates only the
  critic first).
- ``method: rma``: pipeline/learn/rma.py.

The teacher is the train stage's ``models/teacher/policy.pt`` (an rsl-rl runner state; its actor is
rebuilt from ``pipeline.learn.teacher.runner_config``).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.errors import InputError
from pipeline.io import atomic_path
from pipeline.learn.history_env import HistoryEnv
from pipeline.learn.models import feed_forward_kwargs
from pipeline.learn.student import HistoryActor, StudentPolicy, save_student
from pipeline.learn.teacher import runner_config
from pipeline.learn.vecenv import TrackingVecEnv
from pipeline.robot.motion import RobotMotion
from pipeline.sim.config import TrainConfig, _build
from pipeline.sim.task import TrackingEnv

METHODS = ("distill", "rma")


@dataclass(frozen=True)
class RMAConfig:
    latent: int = 8
    encoder_hidden: tuple[int, ...] = (64,)
    adapt_hidden: tuple[int, ...] = (256, 128)
    teacher_iterations: int = 40  # PPO iterations of the privileged-encoder teacher (warm-started)
    adapt_iterations: int = 40
    adapt_epochs: int = 4
    adapt_learning_rate: float = 1.0e-3


@dataclass(frozen=True)
class DistillConfig:
    method: str = "distill"
    history: int = 5  # frames of the actor observation the student sees
    seed: int = 0
    num_envs: int = 64
    hidden: tuple[int, ...] = (512, 256, 128)
    num_steps_per_env: int = 24
    num_learning_epochs: int = 2
    gradient_length: int = 8
    learning_rate: float = 1.0e-3
    max_grad_norm: float = 1.0
    action_std: float = 0.05  # exploration noise of the student while it collects data
    max_iterations: int = 300
    budget_minutes: float = 8.0
    finetune_iterations: int = 0
    finetune_learning_rate: float = 1.0e-4
    rma: RMAConfig = RMAConfig()


def config_from_dict(raw: dict[str, Any] | None, where: str | Path = "params.yaml") -> DistillConfig:
    """The ``distill:`` section, unknown keys rejected, ranges checked (InputError)."""
    cfg = _build(DistillConfig, dict(raw or {}), "distill", where)
    if cfg.method not in METHODS:
        raise InputError(where, f"distill.method '{cfg.method}' is unknown (known: {', '.join(METHODS)})")
    for k in ("history", "num_envs", "num_steps_per_env", "num_learning_epochs", "gradient_length"):
        if getattr(cfg, k) < 1:
            raise InputError(where, f"distill.{k} must be >= 1, got {getattr(cfg, k)}")
    if (cfg.num_learning_epochs * cfg.num_steps_per_env) % cfg.gradient_length:
        raise InputError(where, "distill.gradient_length must divide num_learning_epochs * num_steps_per_env")
    if not (cfg.learning_rate > 0 and cfg.action_std > 0 and cfg.budget_minutes > 0):
        raise InputError(where, "distill.learning_rate, action_std and budget_minutes must be > 0")
    if cfg.max_iterations < 1 or cfg.finetune_iterations < 0:
        raise InputError(where, "distill.max_iterations must be >= 1 and finetune_iterations >= 0")
    if not cfg.hidden or cfg.rma.latent < 1:
        raise InputError(where, "distill.hidden must not be empty and distill.rma.latent >= 1")
    return cfg


def make_env(
    dcfg: DistillConfig, tcfg: TrainConfig, motions: Sequence[RobotMotion], names: Sequence[str]
) -> TrackingVecEnv:
    """The training environment (the teacher's randomization) with the student groups, as an rsl-rl VecEnv."""
    cfg = dataclasses.replace(tcfg, seed=dcfg.seed, num_envs=dcfg.num_envs)
    return TrackingVecEnv(HistoryEnv(TrackingEnv(cfg, motions, names), dcfg.history))  # type: ignore[arg-type]


def teacher_state(path: str | Path) -> dict[str, Any]:
    """The rsl-rl runner state saved by the train stage; InputError when it is missing or not one."""
    path = Path(path)
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
    except (OSError, RuntimeError, EOFError) as e:
        raise InputError(path, f"cannot read the teacher ({e}); run the train stage first") from None
    if not isinstance(state, dict) or "actor_state_dict" not in state:
        raise InputError(path, "not an rsl-rl runner state with an actor (models/teacher/policy.pt)")
    return state


def student_arch(dcfg: DistillConfig, tcfg: TrainConfig) -> dict[str, Any]:
    """Network sizes and, for a residual teacher, the feed-forward constants (saved in student.pt)."""
    teacher = runner_config(tcfg)["actor"]
    ff = {k: list(teacher[k]) for k in ("ff_offset", "ff_scale") if k in teacher}
    return {"hidden": list(dcfg.hidden), **ff}


def load_teacher_into(teacher: dict[str, Any], load: Any) -> None:
    """Run ``load()`` (a state_dict load of the teacher); a shape mismatch becomes an InputError."""
    try:
        load()
    except RuntimeError as e:
        shapes = {k: tuple(v.shape) for k, v in teacher["actor_state_dict"].items() if k.endswith("weight")}
        raise InputError(
            "models/teacher/policy.pt",
            f"the teacher's network ({shapes}) does not match params train.ppo "
            f"(rerun the train stage or restore its params): {str(e).splitlines()[0]}",
        ) from None


def distill_runner_config(dcfg: DistillConfig, tcfg: TrainConfig, obs_size: int) -> dict[str, Any]:
    teacher = runner_config(tcfg)["actor"]
    ff = feed_forward_kwargs(teacher, (dcfg.history - 1) * obs_size)
    return {
        "num_steps_per_env": dcfg.num_steps_per_env,
        "save_interval": 10**9,
        "obs_groups": {"student": ["student"], "teacher": runner_config(tcfg)["obs_groups"]["actor"]},
        "student": {
            "class_name": "pipeline.learn.models:ResidualMLPModel",
            **ff,
            "hidden_dims": list(dcfg.hidden),
            "activation": "elu",
            "obs_normalization": True,
            "distribution_cfg": {
                "class_name": "rsl_rl.modules.GaussianDistribution",
                "init_std": dcfg.action_std,
            },
        },
        "teacher": teacher,
        "algorithm": {
            "class_name": "rsl_rl.algorithms.Distillation",
            "num_learning_epochs": dcfg.num_learning_epochs,
            "gradient_length": dcfg.gradient_length,
            "learning_rate": dcfg.learning_rate,
            "max_grad_norm": dcfg.max_grad_norm,
            "loss_type": "mse",
        },
        "check_for_nan": True,
    }


def policy_from_mlp_model(
    model: torch.nn.Module, history: int, obs_size: int, arch: dict[str, Any]
) -> StudentPolicy:
    """Our plain StudentPolicy from an rsl-rl ``(FeedForward)MLPModel`` (same layer indices; normalizer
    statistics frozen; the feed-forward comes from ``arch``)."""
    num_actions = model.mlp[-1].out_features  # type: ignore[index,union-attr]
    policy = StudentPolicy("distill", history, obs_size, num_actions, arch)
    actor: HistoryActor = policy.actor  # type: ignore[assignment]
    actor.mlp.load_state_dict(model.mlp.state_dict())  # type: ignore[union-attr]
    norm = actor.norm
    src: Any = model.obs_normalizer
    norm.mean.copy_(src.mean)
    norm.std.copy_(src.std)
    norm.eps = float(src.eps)
    return policy.eval()


class Budget:
    """Stops after ``max_iterations`` or ``minutes`` of wall time, whichever first; a rich progress bar."""

    def __init__(self, label: str, max_iterations: int, minutes: float, progress: bool) -> None:
        self.max_iterations, self.seconds = max_iterations, minutes * 60.0
        self.t0 = time.perf_counter()
        self.it = 0
        self.bar = Progress(
            TextColumn(label), BarColumn(), TextColumn("it {task.fields[it]}  {task.fields[msg]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
        )  # fmt: skip
        self.task = self.bar.add_task(label, total=1.0, it=0, msg="")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def fraction(self) -> float:
        return min(1.0, max(self.it / self.max_iterations, self.elapsed / self.seconds))

    def tick(self, msg: str) -> None:
        self.it += 1
        self.bar.update(self.task, completed=self.fraction(), it=self.it, msg=msg)

    def __enter__(self) -> Budget:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)


def write_curves(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = list(rows[0]) if rows else ["iteration"]
    for r in rows:
        fields += [k for k in r if k not in fields]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _episode_row(vec: TrackingVecEnv) -> dict[str, float]:
    st = vec.pop_episode_stats()
    return {
        "termination_rate": st.get("terminated", float("nan")),
        "mpkpe_mm": 1000 * st.get("mpkpe_m", float("nan")),
        "episode_s": st.get("length_s", float("nan")),
    }


def run_dagger(
    dcfg: DistillConfig, tcfg: TrainConfig, vec: TrackingVecEnv, teacher: dict[str, Any], *, progress: bool
) -> tuple[Any, list[dict[str, Any]]]:
    """rsl-rl Distillation iterations until the budget; returns (the runner, curve rows)."""
    from rsl_rl.runners import DistillationRunner

    torch.manual_seed(dcfg.seed)
    cfg = distill_runner_config(dcfg, tcfg, vec.env.obs_size)  # type: ignore[attr-defined]
    runner = DistillationRunner(vec, cfg, log_dir=None, device="cpu")
    load_teacher_into(teacher, lambda: runner.alg.load(teacher, None, strict=True))
    alg = runner.alg
    obs = vec.get_observations()
    alg.train_mode()
    rows: list[dict[str, Any]] = []
    with Budget("distill", dcfg.max_iterations, dcfg.budget_minutes, progress) as budget:
        while budget.fraction() < 1.0:
            with torch.inference_mode():
                for _ in range(dcfg.num_steps_per_env):
                    actions = alg.act(obs)
                    obs, rew, dones, extras = vec.step(actions)
                    alg.process_env_step(obs, rew, dones, extras)
            losses = alg.update()
            row = {"iteration": budget.it + 1, "wall_s": round(budget.elapsed, 2),
                   "behavior_loss": losses["behavior"], **_episode_row(vec)}  # fmt: skip
            rows.append(row)
            budget.tick(f"loss {row['behavior_loss']:.4f}  mpkpe {row['mpkpe_mm']:.0f} mm")
    return runner, rows


def finetune_ppo(
    dcfg: DistillConfig,
    tcfg: TrainConfig,
    vec: TrackingVecEnv,
    student_model: torch.nn.Module,
    *,
    progress: bool,
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """rsl-rl PPO on the student (actor on ``student``, critic on ``critic``), starting from the distilled
    weights; the first third of the iterations updates the critic only (actor parameters frozen)."""
    from rsl_rl.runners import OnPolicyRunner

    cfg = runner_config(tcfg)
    cfg["obs_groups"] = {"actor": ["student"], "critic": ["critic"]}
    student = distill_runner_config(dcfg, tcfg, vec.env.obs_size)["student"]  # type: ignore[attr-defined]
    cfg["actor"] = {**student, "distribution_cfg": cfg["actor"]["distribution_cfg"]}
    cfg["actor"]["distribution_cfg"] = {**cfg["actor"]["distribution_cfg"], "init_std": dcfg.action_std}
    cfg["algorithm"] = {
        **cfg["algorithm"],
        "learning_rate": dcfg.finetune_learning_rate,
        "schedule": "fixed",
        "symmetry_cfg": None,
    }  # fmt: skip (the student's history group has no mirror rule)
    runner = OnPolicyRunner(vec, cfg, log_dir=None, device="cpu")
    alg = runner.alg
    alg.actor.load_state_dict(student_model.state_dict())
    obs = vec.get_observations()
    alg.train_mode()
    rows: list[dict[str, Any]] = []
    warmup = dcfg.finetune_iterations // 3
    with Budget("finetune", dcfg.finetune_iterations, 1e9, progress) as budget:
        while budget.fraction() < 1.0:
            frozen = budget.it < warmup
            for p in alg.actor.parameters():
                p.requires_grad_(not frozen)
            obs, value_loss = ppo_iteration(alg, vec, obs, dcfg.num_steps_per_env)
            row = {"iteration": budget.it + 1, "wall_s": round(budget.elapsed, 2), "critic_only": int(frozen),
                   "value_loss": value_loss,
                   **_episode_row(vec)}  # fmt: skip
            rows.append(row)
            budget.tick(f"value {row['value_loss']:.3f}  mpkpe {row['mpkpe_mm']:.0f} mm")
    for p in alg.actor.parameters():
        p.requires_grad_(True)
    return alg.actor, rows


def ppo_iteration(alg: Any, vec: TrackingVecEnv, obs: Any, steps: int) -> tuple[Any, float]:
    """One rsl-rl PPO iteration: ``steps`` env steps collected without gradients, then an update.

    Returns the next observation and the update's value loss.
    """
    with torch.inference_mode():
        for _ in range(steps):
            actions = alg.act(obs)
            obs, rew, dones, extras = vec.step(actions)
            alg.process_env_step(obs, rew, dones, extras)
        alg.compute_returns(obs)
    losses = alg.update()
    return obs, float(losses.get("value", losses.get("value_function", float("nan"))))


def distill(
    dcfg: DistillConfig,
    tcfg: TrainConfig,
    motions: Sequence[RobotMotion],
    names: Sequence[str],
    teacher_path: str | Path,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the student (``dcfg.method``) and write ``out_dir``/{student.pt, curves.csv}; returns a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    teacher = teacher_state(teacher_path)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    vec = make_env(dcfg, tcfg, motions, names)
    henv: HistoryEnv = vec.env  # type: ignore[assignment]
    obs_size, n = henv.obs_size, vec.num_actions
    summary: dict[str, Any] = {"method": dcfg.method, "history": dcfg.history, "obs_size": obs_size}
    if dcfg.method == "rma":
        from pipeline.learn.rma import train_rma

        policy, rows, arch, extra = train_rma(dcfg, tcfg, vec, teacher, progress=progress)
        summary.update(extra)
    else:
        arch = student_arch(dcfg, tcfg)
        runner, rows = run_dagger(dcfg, tcfg, vec, teacher, progress=progress)
        model = runner.alg.get_policy()
        summary["iterations"] = len(rows)
        summary["behavior_loss_first"] = float(rows[0]["behavior_loss"])
        summary["behavior_loss_last"] = float(rows[-1]["behavior_loss"])
        if dcfg.finetune_iterations:
            model, ft_rows = finetune_ppo(dcfg, tcfg, vec, model, progress=progress)
            rows += [{**r, "iteration": len(rows) + r["iteration"], "phase": "finetune"} for r in ft_rows]
            summary["finetune_iterations"] = len(ft_rows)
        policy = policy_from_mlp_model(model, dcfg.history, obs_size, arch)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    summary["env_steps"] = len(rows) * dcfg.num_steps_per_env * dcfg.num_envs
    save_student(
        out_dir / "student.pt", policy, num_actions=n, control_dt=tcfg.control_dt, arch=arch,
        meta={k: v for k, v in summary.items() if isinstance(v, int | float | str)},
    )  # fmt: skip
    write_curves(out_dir / "curves.csv", rows)
    return summary


def rows_mean(rows: list[dict[str, Any]], key: str, last: int = 5) -> float:
    vals = [float(r[key]) for r in rows[-last:] if key in r and np.isfinite(float(r[key]))]
    return float(np.mean(vals)) if vals else float("nan")
