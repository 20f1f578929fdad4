"""evaluate stage: teacher and student on the same seeds under nominal / randomized / sim2sim physics.

usage: python stages/evaluate.py ROBOT_MOTION_DIR TEACHER_DIR STUDENT_DIR REPORT_DIR
Reads params.yaml `robot`, `train` and `evaluate`. Writes REPORT_DIR/eval.json ({policy: {condition:
{metric: value}}}, the DVC metric), REPORT_DIR/eval_detail.json (per clip, the bar, the sim2sim ablation),
REPORT_DIR/plots/{success,tracking_error}.png and REPORT_DIR/student_<clip>.mp4.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from pipeline.stage import params, run


def main(argv: list[str]) -> None:
    motion_dir, teacher_dir, student_dir, report_dir = (Path(a) for a in argv)
    from pipeline.evaluate.report import config_from_dict, plot, render_video, run_evaluation
    from pipeline.io import write_json
    from pipeline.learn.teacher import load_motions
    from pipeline.sim.config import from_dict

    tcfg = dataclasses.replace(from_dict(params("train")), robot=params("robot"))
    ecfg = config_from_dict(params("evaluate"))
    motions, names = load_motions(tcfg, motion_dir)
    if ecfg.video.clip in names:  # the video clip first: its first env is the one recorded
        i = names.index(ecfg.video.clip)
        motions.insert(0, motions.pop(i))
        names.insert(0, names.pop(i))
    metrics, detail, rollouts = run_evaluation(
        ecfg, tcfg, motions, names, teacher_dir / "policy.pt", student_dir
    )
    write_json(report_dir / "eval.json", metrics)
    write_json(report_dir / "eval_detail.json", detail)
    plot(metrics, rollouts, report_dir / "plots")
    render_video(rollouts[("student", "nominal")], tcfg.robot, ecfg.video, report_dir / "student_walk.mp4")
    for p, by in metrics.items():
        for c, m in by.items():
            print(
                f"{p:8s} {c:17s} success={m['success_rate']:.3f} mpkpe={m['mpkpe_mm']:.1f} mm "
                f"torque={m['torque_nm']:.2f} N m action_rate={m['action_rate']:.4f}"
            )
    print(f"bar: {detail['bar']}")


if __name__ == "__main__":
    run(main)
