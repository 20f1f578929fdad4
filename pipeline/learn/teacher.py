"""PPO teacher training with rsl-rl-lib: runner glue, budget, checkpoints/resume, learning curves, progress.

``train(cfg, motions, names, out_dir)`` writes into ``out_dir``::

    checkpoints/last.pt   rsl-rl runner state + our counters (iteration, env steps, wall seconds, sampler,
                          best selection score); a rerun with the same config resumes from it (DVC ``persist``)
    checkpoints/best.pt   the runner state that scored best in selection (``train.select``)
    curves.csv            one row per PPO iteration (for ``dvc plots``); selection scores on the rows they ran
    policy.pt             the selected runner state (actor + critic + normalizers), loadable by
                          :func:`teacher_policy`: the best scored, or the final one without selection

Selection exists because the deterministic actor's robustness is not monotone in training: in one run it
tracked 16 of 16 randomized selection episodes at iteration 1800 and 13 of 16 seven iterations later, at the
end of the budget. Its episodes use their own seed, not the train or evaluate stages' evaluation seeds, so the
scores those report are not the selection's own.

The PPO itself is rsl-rl-lib's (``OnPolicyRunner.alg``: act / process_env_step / compute_returns / update);
this module only drives its iterations so it can stop on a wall-clock or env-step budget, time the update
share, checkpoint and resume.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rsl_rl.runners import OnPolicyRunner
from tensordict import TensorDict

from pipeline.deploy import observation as dob
from pipeline.errors import InputError
from pipeline.evaluate.rollout import PolicySpec
from pipeline.io import atomic_path
from pipeline.learn.vecenv import TrackingVecEnv
from pipeline.retarget.quality import gate_failures
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot
from pipeline.sim.config import TrainConfig
from pipeline.sim.task import TrackingEnv

CURVE_FIELDS = (
    "iteration", "env_steps", "wall_s", "return", "episode_s", "termination_rate", "mpkpe_mm", "value_loss",
    "surrogate_loss", "action_std", "learning_rate", "collect_s", "update_s", "select_success_rate",
    "select_survival_s", "select_mpkpe_mm",
)  # fmt: skip


def actor_groups(cfg: TrainConfig) -> list[str]:
    """The observation groups the teacher's actor reads, in order (``actor`` first: the feed-forward and the
    deployable frame are there)."""
    return ["actor", "anchor_pos"] if cfg.actor_anchor_pos else ["actor"]


def runner_config(cfg: TrainConfig) -> dict[str, Any]:
    """The rsl-rl-lib OnPolicyRunner configuration (asymmetric actor-critic, normalised observations).

    With ``train.ppo.residual`` the actor is :class:`pipeline.learn.models.ResidualMLPModel` (its output is a
    residual around the reference joint positions; the residual is inside the module and its exports)."""
    p = cfg.ppo

    def model(hidden: tuple[int, ...], dist: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "class_name": "rsl_rl.models.MLPModel",
            "hidden_dims": list(hidden),
            "activation": "elu",
            "obs_normalization": True,
        }
        if dist and p.residual:
            robot = load_robot(cfg.robot)
            d["class_name"] = "pipeline.learn.models:ResidualMLPModel"
            d["ff_offset"] = robot.default_pos.tolist()
            d["ff_scale"] = robot.action_scale.tolist()
            d["last_layer_gain"] = 0.01  # the untrained mean is the reference itself
        if dist:
            d["distribution_cfg"] = {
                "class_name": "rsl_rl.modules.GaussianDistribution",
                "init_std": p.init_noise_std,
            }
        return d

    return {
        "num_steps_per_env": p.num_steps_per_env,
        "save_interval": cfg.checkpoint_every,
        "obs_groups": {"actor": actor_groups(cfg), "critic": ["critic"]},
        "actor": model(p.actor_hidden, True),
        "critic": model(p.critic_hidden, False),
        "algorithm": {
            "class_name": "rsl_rl.algorithms.PPO",
            "num_learning_epochs": p.num_learning_epochs,
            "num_mini_batches": p.num_mini_batches,
            "clip_param": p.clip_param,
            "gamma": p.gamma,
            "lam": p.lam,
            "value_loss_coef": p.value_loss_coef,
            "entropy_coef": p.entropy_coef,
            "learning_rate": p.learning_rate,
            "max_grad_norm": p.max_grad_norm,
            "schedule": "fixed" if p.schedule == "linear" else p.schedule,  # linear: set by train()
            "desired_kl": p.desired_kl,
            # every mini-batch also in its left-right mirror image (pipeline/sim/symmetry.py)
            "symmetry_cfg": {
                "use_data_augmentation": True,
                "use_mirror_loss": False,
                "mirror_loss_coeff": 0.0,
                "data_augmentation_func": "pipeline.sim.symmetry:augment",
            }
            if p.symmetry
            else None,
        },
        "check_for_nan": True,
    }


def config_hash(cfg: TrainConfig, names: Sequence[str], motions: Sequence[RobotMotion]) -> str:
    """Identity of a training run: a checkpoint of another config/clip set is not resumed (the budget, the
    checkpoint interval and the evaluation settings are not part of it: raising the budget continues a run)."""
    ident = {
        k: v for k, v in asdict(cfg).items() if k not in ("budget", "checkpoint_every", "eval", "select")
    }
    h = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode())
    for n, m in zip(names, motions, strict=True):
        h.update(n.encode())
        h.update(np.ascontiguousarray(m.dof_pos).tobytes())
    return h.hexdigest()[:16]


@dataclass
class TrainResult:
    iterations: int
    env_steps: int
    wall_s: float
    collect_s: float
    update_s: float
    resumed_from: int
    selected: dict[str, Any] | None  # the selection score of policy.pt (iteration, success_rate, ...)

    @property
    def update_share(self) -> float:
        return self.update_s / max(self.collect_s + self.update_s, 1e-9)


def build_runner(env: TrackingEnv, cfg: TrainConfig) -> tuple[TrackingVecEnv, OnPolicyRunner]:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    vec = TrackingVecEnv(env)
    if cfg.ppo.symmetry:
        _ = vec.mirror  # a robot that is not its own mirror image is refused here, before any training
    runner = OnPolicyRunner(vec, runner_config(cfg), log_dir=None, device="cpu")
    return vec, runner


def _save(path: Path, runner: OnPolicyRunner, counters: dict[str, Any]) -> None:
    state = runner.alg.save()
    state["iter"] = counters["iteration"]
    state["infos"] = counters
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train(
    cfg: TrainConfig,
    motions: Sequence[RobotMotion],
    names: Sequence[str],
    out_dir: Path,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train until ``cfg.budget`` is spent (counting earlier interrupted runs of the same config)."""
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ident = config_hash(cfg, names, motions)
    env = TrackingEnv(cfg, motions, names)
    vec, runner = build_runner(env, cfg)
    counters: dict[str, Any] = {
        "iteration": 0,
        "env_steps": 0,
        "wall_s": 0.0,
        "collect_s": 0.0,
        "update_s": 0.0,
        "config": ident,
    }
    last = ckpt_dir / "last.pt"
    curves = out_dir / "curves.csv"
    resumed = 0
    if last.exists():
        saved = torch.load(last, weights_only=False, map_location="cpu")
        if saved.get("infos", {}).get("config") == ident:
            runner.alg.load(saved, None, strict=True)
            counters.update(saved["infos"])
            env.sampler.failure[:] = np.asarray(counters.pop("sampler_failure"))
            resumed = int(counters["iteration"])
    # the best score is best.pt's own (it may be newer than last.pt's counters when a run was killed)
    best = ckpt_dir / "best.pt"
    counters.pop("best", None)
    if resumed and best.exists():
        infos = torch.load(best, weights_only=False, map_location="cpu").get("infos", {})
        if infos.get("config") == ident and "best" in infos:
            counters["best"] = infos["best"]
    rows = _read_curves(curves, resumed)
    budget_s = cfg.budget.minutes * 60.0 if cfg.budget.minutes > 0 else float("inf")
    budget_steps = cfg.budget.env_steps if cfg.budget.env_steps > 0 else float("inf")
    per_iter = cfg.ppo.num_steps_per_env * env.num_envs

    def fraction() -> float:
        """Share of the budget spent, which the schedules (learning rate, push ramp, selection start) follow:
        of the env steps when there is a step budget (the minutes only stop a slow machine early), so a run
        repeats step for step on any machine that finishes it; else of the minutes."""
        if cfg.budget.env_steps > 0:
            return min(1.0, counters["env_steps"] / budget_steps)
        return min(1.0, counters["wall_s"] / budget_s)

    def spent() -> bool:
        return counters["env_steps"] >= budget_steps or counters["wall_s"] >= budget_s

    sel = cfg.select
    selecting = sel.every > 0
    if selecting:
        from pipeline.evaluate.conditions import Sim2SimConfig, condition

        sel_cfg, sel_physics = condition(
            cfg, "randomized" if cfg.eval.randomized else "nominal", Sim2SimConfig()
        )

    obs = vec.get_observations()
    runner.alg.train_mode()
    bar = Progress(
        TextColumn("train"), BarColumn(), TextColumn("{task.percentage:>5.1f}%  it {task.fields[it]}  "
        "ret {task.fields[ret]}  mpkpe {task.fields[mpkpe]} mm"), TimeElapsedColumn(), TimeRemainingColumn(),
        disable=not progress,
    )  # fmt: skip
    with bar:
        task = bar.add_task(
            "train", total=1000, it=resumed, ret="-", mpkpe="-", completed=int(1000 * fraction())
        )
        ramp = cfg.randomization.push_ramp
        while not spent():
            env.push_scale = min(1.0, fraction() / ramp) if ramp > 0 else 1.0  # push curriculum
            if cfg.ppo.schedule == "linear":
                lr = (
                    cfg.ppo.learning_rate + (cfg.ppo.final_learning_rate - cfg.ppo.learning_rate) * fraction()
                )
                runner.alg.learning_rate = lr
                for group in runner.alg.optimizer.param_groups:
                    group["lr"] = lr
            t0 = time.perf_counter()
            with torch.inference_mode():
                for _ in range(cfg.ppo.num_steps_per_env):
                    actions = runner.alg.act(obs)
                    obs, rew, dones, extras = vec.step(actions)
                    runner.alg.process_env_step(obs, rew, dones, extras)
                runner.alg.compute_returns(obs)
            t1 = time.perf_counter()
            torch.set_num_threads(cfg.sim.nthread)  # the physics threads are idle during the update
            losses = runner.alg.update()
            torch.set_num_threads(1)
            t2 = time.perf_counter()
            counters["iteration"] += 1
            counters["env_steps"] += per_iter
            counters["collect_s"] += t1 - t0
            counters["update_s"] += t2 - t1
            counters["wall_s"] += t2 - t0
            stats = vec.pop_episode_stats()
            row = {
                "iteration": counters["iteration"],
                "env_steps": counters["env_steps"],
                "wall_s": round(counters["wall_s"], 2),
                "return": stats.get("return", float("nan")),
                "episode_s": stats.get("length_s", float("nan")),
                "termination_rate": stats.get("terminated", float("nan")),
                "mpkpe_mm": 1000 * stats.get("mpkpe_m", float("nan")),
                "value_loss": losses.get("value", losses.get("value_function", float("nan"))),
                "surrogate_loss": losses.get("surrogate", float("nan")),
                "action_std": float(runner.alg.get_policy().output_std.detach().mean()),
                "learning_rate": float(runner.alg.learning_rate),
                "collect_s": round(t1 - t0, 3),
                "update_s": round(t2 - t1, 3),
            }
            done = spent()
            if selecting and fraction() >= sel.start and (counters["iteration"] % sel.every == 0 or done):
                t3 = time.perf_counter()
                score = _select_score(runner, cfg, sel_cfg, sel_physics, motions, names)
                counters["wall_s"] += time.perf_counter() - t3
                row.update({f"select_{k}": v for k, v in score.items()})
                if "best" not in counters or _better(score, counters["best"]):
                    counters["best"] = {"iteration": counters["iteration"], **score}
                    _save(best, runner, counters)
            rows.append(row)
            bar.update(task, completed=1000 * fraction(), it=counters["iteration"],
                       ret=f"{row['return']:.2f}", mpkpe=f"{row['mpkpe_mm']:.0f}")  # fmt: skip
            if counters["iteration"] % cfg.checkpoint_every == 0 or done:
                counters["sampler_failure"] = env.sampler.failure.tolist()
                _save(last, runner, counters)
                counters.pop("sampler_failure")
                _write_curves(curves, rows)
    _write_curves(curves, rows)
    counters["sampler_failure"] = env.sampler.failure.tolist()
    if "best" in counters:
        with atomic_path(out_dir / "policy.pt") as tmp:
            shutil.copyfile(best, tmp)
    else:
        _save(out_dir / "policy.pt", runner, counters)
    return TrainResult(
        iterations=int(counters["iteration"]),
        env_steps=int(counters["env_steps"]),
        wall_s=float(counters["wall_s"]),
        collect_s=float(counters["collect_s"]),
        update_s=float(counters["update_s"]),
        resumed_from=resumed,
        selected=counters.get("best"),
    )


def _select_score(
    runner: OnPolicyRunner,
    cfg: TrainConfig,
    sel_cfg: TrainConfig,
    physics: Any,
    motions: Sequence[RobotMotion],
    names: Sequence[str],
) -> dict[str, float]:
    """The live deterministic actor scored on ``train.select`` episodes (its own seed)."""
    from pipeline.evaluate.rollout import rollout

    spec = _actor_spec(runner.alg.get_policy(), cfg)
    r = rollout(spec, sel_cfg, physics, motions, names, history=1, seed=cfg.seed + 20_000,
                episodes_per_clip=cfg.select.episodes_per_clip, min_episode_s=cfg.eval.min_episode_s)  # fmt: skip
    o = r.summary["overall"]
    return {k: float(o[k]) for k in ("success_rate", "survival_s", "mpkpe_mm")}


def _better(score: dict[str, float], best: dict[str, float]) -> bool:
    """Success rate first; among equal rates the longer survival, then the lower MPKPE (ties keep ``best``)."""

    def rank(s: dict[str, float]) -> tuple[float, float, float]:
        return s["success_rate"], s["survival_s"], -s["mpkpe_mm"]

    return rank(score) > rank(best)


def _read_curves(path: Path, upto: int) -> list[dict[str, Any]]:
    if upto == 0 or not path.exists():
        return []
    with path.open() as f:
        return [r for r in csv.DictReader(f) if int(r["iteration"]) <= upto]


def _write_curves(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in CURVE_FIELDS})


def teacher_policy(path: str | Path, cfg: TrainConfig) -> PolicySpec:
    """The deterministic actor of a saved runner state (the train stage's ``policy.pt``), reading the groups
    :func:`actor_groups` (concatenated, as :class:`PolicySpec` passes them); an InputError when the file is
    not a teacher or does not match ``train.ppo``."""
    from rsl_rl.utils import resolve_class

    from pipeline.learn.distill import load_teacher_into, teacher_state

    state = teacher_state(path)
    n = load_robot(cfg.robot).num_joints
    groups = actor_groups(cfg)
    dummy = TensorDict({g: torch.zeros(1, _group_size(g, n)) for g in groups}, batch_size=[1])
    cls, kw = resolve_class(runner_config(cfg)["actor"])
    model = cls(dummy, {"actor": groups}, "actor", n, **kw)
    load_teacher_into(state, lambda: model.load_state_dict(state["actor_state_dict"]))
    model.eval()
    return _actor_spec(model, cfg)


def _group_size(group: str, num_joints: int) -> int:
    return 3 if group == "anchor_pos" else sum(t.size for t in dob.actor_layout(num_joints))


def _actor_spec(model: torch.nn.Module, cfg: TrainConfig) -> PolicySpec:
    """The deterministic output of an actor model as a PolicySpec (its groups concatenated in order)."""
    groups = actor_groups(cfg)
    n = load_robot(cfg.robot).num_joints
    split = np.cumsum([_group_size(g, n) for g in groups])[:-1]

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            parts = np.split(np.asarray(obs, dtype=np.float32), split, axis=1)
            td = TensorDict({g: torch.as_tensor(x) for g, x in zip(groups, parts, strict=True)},
                            batch_size=[obs.shape[0]])  # fmt: skip
            return model(td).numpy().astype(np.float64)

    return PolicySpec(tuple(groups), act)


def evaluate_teacher(
    path: str | Path, cfg: TrainConfig, motions: Sequence[RobotMotion], names: Sequence[str]
) -> dict[str, Any]:
    """The train stage's own score of ``policy.pt``: ``train.eval`` episodes from each clip's first frame,
    under the training randomization (or nominal with ``eval.randomized: false``), scored as the evaluate
    stage scores (pipeline/evaluate/rollout.py): ``{"randomized", "overall": {...}, "clips": {name: {...}}}``."""
    from pipeline.evaluate.conditions import Sim2SimConfig, condition
    from pipeline.evaluate.rollout import rollout

    ecfg, physics = condition(cfg, "randomized" if cfg.eval.randomized else "nominal", Sim2SimConfig())
    r = rollout(teacher_policy(path, cfg), ecfg, physics, motions, names, history=1, seed=cfg.seed + 10_000,
                episodes_per_clip=cfg.eval.episodes_per_clip, min_episode_s=cfg.eval.min_episode_s)  # fmt: skip
    return {"randomized": cfg.eval.randomized, **r.summary}


def load_motions(cfg: TrainConfig, data_dir: Path) -> tuple[list[RobotMotion], list[str]]:
    """``data_dir/<clip>.npz`` for every clip of ``cfg.clips`` (checked for the robot); clips named in
    ``cfg.loop`` are looped even if their source does not say ``cyclic``."""
    motions, names = [], []
    for name in cfg.clips:
        path = Path(data_dir) / f"{name}.npz"
        if not path.is_file():
            raise InputError(path, f"clip '{name}' (train.clips) has no robot motion; run its retarget stage")
        report = Path(data_dir) / f"{name}.quality.json"
        failures = gate_failures(json.loads(report.read_text())) if report.is_file() else []
        if failures:
            print(f"train: clip '{name}' kept out of training, it fails the quality gate: {'; '.join(failures)}",
                  file=sys.stderr)  # fmt: skip
            continue
        m = RobotMotion.load(path, robot=cfg.robot)
        if name in cfg.loop and not m.source.get("cyclic"):
            m = dataclasses.replace(m, source={**m.source, "cyclic": True})
        motions.append(m)
        names.append(name)
    if not motions:
        raise InputError(
            data_dir, "every clip of train.clips fails its retarget quality gate; nothing to train on"
        )
    return motions, names


def plot_curves(csv_path: Path, png_path: Path) -> None:
    """Learning curves (return, episode length, MPKPE against env steps) as a PNG, rendered offline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Path(csv_path).open() as f:
        rows = list(csv.DictReader(f))
    x = np.array([float(r["env_steps"]) for r in rows])
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    for ax, key, label in zip(
        axes,
        ("return", "episode_s", "mpkpe_mm"),
        ("episode return (training)", "episode length (s, training)", "MPKPE (mm, training)"),
        strict=False,
    ):
        ax.plot(x, [float(r[key]) for r in rows])
        ax.set_title(label)
    scored = [r for r in rows if r.get("select_success_rate")]
    ax = axes[3]
    xs = [float(r["env_steps"]) for r in scored]
    ax.plot(xs, [float(r["select_success_rate"]) for r in scored], "o-", color="C0")
    ax.set_ylabel("success rate", color="C0")
    ax.set_ylim(-0.05, 1.05)
    twin = ax.twinx()
    twin.plot(xs, [float(r["select_survival_s"]) for r in scored], "s--", color="C1")
    twin.set_ylabel("survival (s)", color="C1")
    ax.set_title("selection (deterministic actor)")
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
