"""The evaluate stage's work: teacher and student under every condition, the report, plots and video.

``run_evaluation(ecfg, tcfg, motions, names, teacher_path, student_dir)`` returns ``(metrics, detail,
rollouts)``: ``metrics`` is ``reports/eval.json`` (``{policy: {condition: {metric: value}}}``, overall over
clips), ``detail`` adds per-clip numbers, the bar check and the sim2sim ablation (the drop from
``randomized`` caused by each held-out change alone, and the largest one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.evaluate.conditions import ABLATIONS, CONDITIONS, Sim2SimConfig, condition
from pipeline.evaluate.rollout import PolicySpec, Rollout, rollout
from pipeline.learn.student import load_student
from pipeline.learn.teacher import teacher_policy
from pipeline.robot.motion import RobotMotion
from pipeline.sim.config import TrainConfig, _build


@dataclass(frozen=True)
class VideoConfig:
    clip: str = "walk"
    seconds: float = 6.0
    width: int = 480
    height: int = 360
    fps: float = 25.0


@dataclass(frozen=True)
class EvaluateConfig:
    seed: int = 1000
    episodes_per_clip: int = 16
    min_episode_s: float = 10.0
    ablations: bool = True
    sim2sim: Sim2SimConfig = Sim2SimConfig()  # noqa: RUF009 (frozen)
    video: VideoConfig = VideoConfig()


def config_from_dict(raw: dict[str, Any] | None, where: str | Path = "params.yaml") -> EvaluateConfig:
    from pipeline.errors import InputError

    cfg = _build(EvaluateConfig, dict(raw or {}), "evaluate", where)
    if cfg.episodes_per_clip < 1 or cfg.min_episode_s <= 0:
        raise InputError(where, "evaluate.episodes_per_clip must be >= 1 and min_episode_s > 0")
    if cfg.sim2sim.range_scale < 1 or cfg.sim2sim.actuator_latency_s < 0:
        raise InputError(where, "evaluate.sim2sim.range_scale must be >= 1 and actuator_latency_s >= 0")
    return cfg


def run_evaluation(
    ecfg: EvaluateConfig,
    tcfg: TrainConfig,
    motions: Sequence[RobotMotion],
    names: Sequence[str],
    teacher_path: str | Path,
    student_dir: str | Path,
    *,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, Any], dict[tuple[str, str], Rollout]]:
    from rich.progress import Progress

    torch.set_num_threads(1)
    student = load_student(student_dir)
    policies = {
        "teacher": teacher_policy(teacher_path, tcfg),
        "student": PolicySpec(("student",), student.act),
    }
    conds = [*CONDITIONS, *(ABLATIONS if ecfg.ablations else ())]
    metrics: dict[str, Any] = {p: {} for p in policies}
    clips: dict[str, Any] = {p: {} for p in policies}
    rollouts: dict[tuple[str, str], Rollout] = {}
    with Progress(disable=not progress) as bar:
        task = bar.add_task("evaluate", total=len(conds) * len(policies))
        for cname in conds:
            cfg, physics = condition(tcfg, cname, ecfg.sim2sim)
            for pname, pol in policies.items():
                bar.update(task, description=f"evaluate {pname} / {cname}")
                r = rollout(pol, cfg, physics, motions, names, history=student.history, seed=ecfg.seed,
                            episodes_per_clip=ecfg.episodes_per_clip, min_episode_s=ecfg.min_episode_s)  # fmt: skip
                rollouts[(pname, cname)] = r
                metrics[pname][cname] = r.summary["overall"]
                clips[pname][cname] = r.summary["clips"]
                bar.advance(task)
    detail = {"clips": clips, "bar": bar_check(metrics), "student": dict(student.meta)}
    if ecfg.ablations:
        detail["sim2sim_ablation"] = ablation(metrics)
    return metrics, detail, rollouts


# below this many teacher successes one episode more or less moves the student/teacher ratio by 0.2 or more
MIN_TEACHER_SUCCESSES = 5


def bar_check(metrics: dict[str, Any]) -> dict[str, Any]:
    t = metrics["teacher"]["randomized"]["success_rate"]
    s = metrics["student"]["randomized"]["success_rate"]
    successes = round(t * metrics["teacher"]["randomized"]["episodes"])
    return {
        "randomized_student_over_teacher_success": s / t if t > 0 else float("nan"),
        "passes_0.9": bool(s >= 0.9 * t),
        "teacher_successes": successes,
        "meaningful": bool(successes >= MIN_TEACHER_SUCCESSES),
        "randomized_mpkpe_mm": {p: metrics[p]["randomized"]["mpkpe_mm"] for p in ("teacher", "student")},
    }


def ablation(metrics: dict[str, Any]) -> dict[str, Any]:
    """Per policy: the success, survival and MPKPE change from ``randomized`` for each single held-out change and
    all together; the largest source ranks by success drop, then survival drop, then MPKPE increase."""
    out: dict[str, Any] = {}
    for p, by in metrics.items():
        base = by["randomized"]
        drops = {
            c.removeprefix("sim2sim_") if c != "sim2sim" else "all": {
                "success_drop": base["success_rate"] - by[c]["success_rate"],
                "survival_drop_s": base.get("survival_s", 0.0) - by[c].get("survival_s", 0.0),
                "mpkpe_increase_mm": by[c]["mpkpe_mm"] - base["mpkpe_mm"],
            }
            for c in ("sim2sim", *ABLATIONS)
        }
        singles = {k: v for k, v in drops.items() if k != "all"}
        order = ("success_drop", "survival_drop_s", "mpkpe_increase_mm")  # ties broken by the next one
        largest = max(singles, key=lambda k: tuple(round(singles[k][m], 6) for m in order))
        out[p] = {"drops": drops, "largest_source": largest}
    return out


def plot(metrics: dict[str, Any], rollouts: dict[tuple[str, str], Rollout], out_dir: Path) -> list[Path]:
    """success.png (bars per condition) and tracking_error.png (mpkpe over time, first clip)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.io import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    conds = list(metrics["teacher"])
    x = np.arange(len(conds))
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, p in enumerate(("teacher", "student")):
        ax.bar(x + (i - 0.5) * 0.38, [metrics[p][c]["success_rate"] for c in conds], 0.38, label=p)
    ax.set_xticks(x, conds, rotation=20)
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("Tracking success per evaluation condition (same seeds)")
    fig.tight_layout()
    paths = []
    with atomic_path(out_dir / "success.png") as tmp:
        fig.savefig(tmp, dpi=100)
    paths.append(out_dir / "success.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 4))
    for j, c in enumerate(("nominal", "randomized", "sim2sim")):
        for p, style in (("teacher", "--"), ("student", "-")):
            r = rollouts.get((p, c))
            if r is not None:
                t = np.arange(len(r.mpkpe_curve_mm)) * r.dt
                ax.plot(t, r.mpkpe_curve_mm, style, color=f"C{j}", label=f"{p} / {c}")
    ax.set_xlabel("time, s")
    ax.set_ylabel("MPKPE of alive episodes, mm")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Tracking error over time")
    fig.tight_layout()
    with atomic_path(out_dir / "tracking_error.png") as tmp:
        fig.savefig(tmp, dpi=100)
    paths.append(out_dir / "tracking_error.png")
    plt.close(fig)
    return paths


def render_video(r: Rollout, robot: str, vcfg: VideoConfig, path: Path) -> Path:
    """The first env's trajectory (the student on the video clip) as an mp4."""
    import imageio.v2 as imageio

    from pipeline.io import atomic_path
    from pipeline.viz.render import render_frames

    frames = min(len(r.qpos), round(vcfg.seconds / r.dt) + 1)
    motion = RobotMotion.from_qpos(robot, r.qpos[:frames], 1.0 / r.dt, source={"format": "rollout"})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".mp4") as tmp:
        writer = imageio.get_writer(tmp, fps=vcfg.fps, codec="libx264", quality=7, macro_block_size=8,
                                    format="FFMPEG")  # fmt: skip
        try:
            for frame in render_frames(motion, width=vcfg.width, height=vcfg.height, fps=vcfg.fps):
                writer.append_data(frame)
        finally:
            writer.close()
    return path


__all__ = ["EvaluateConfig", "VideoConfig", "config_from_dict", "plot", "run_evaluation"]
