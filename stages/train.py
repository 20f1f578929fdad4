"""train stage: data/robot/<clip>.npz (params train.clips) -> models/teacher/.

usage: python stages/train.py ROBOT_MOTION_DIR OUT_DIR
Reads params.yaml `robot` and `train`. Writes OUT_DIR/policy.pt, OUT_DIR/curves.csv, OUT_DIR/metrics.json,
OUT_DIR/curves.png and
OUT_DIR/checkpoints/ (kept between runs: an interrupted run resumes from its last checkpoint).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.stage import params, run


def main(argv: list[str]) -> None:
    motion_dir, out_dir = (Path(a) for a in argv)
    from pipeline.io import write_json
    from pipeline.learn.teacher import evaluate_teacher, load_motions, plot_curves, train
    from pipeline.sim.config import from_dict

    cfg = dataclasses.replace(from_dict(params("train")), robot=params("robot"))
    motions, names = load_motions(cfg, motion_dir)  # bad clips fail here, before any training
    result = train(cfg, motions, names, out_dir)
    metrics = evaluate_teacher(out_dir / "policy.pt", cfg, motions, names)
    metrics["training"] = {
        "iterations": result.iterations,
        "env_steps": result.env_steps,
        "wall_s": round(result.wall_s, 1),
        "env_steps_per_s": round(result.env_steps / max(result.wall_s, 1e-9), 1),
        "ppo_update_share": round(result.update_share, 3),
        "resumed_from_iteration": result.resumed_from,
        "selected": result.selected,  # policy.pt's selection score (null: the final iterate, no selection)
    }
    write_json(out_dir / "metrics.json", metrics)
    plot_curves(out_dir / "curves.csv", out_dir / "curves.png")
    o = metrics["overall"]
    print(
        f"teacher: success_rate={o['success_rate']:.3f} mpkpe_mm={o['mpkpe_mm']:.1f} "
        f"joint_err_rad={o['joint_err_rad']:.3f} episodes={o['episodes']} ({result.env_steps} env steps); drift: "
        f"heading {o['heading_err_deg']:.1f} deg, along {o['drift_along_mm']:.0f} mm, across {o['drift_across_mm']:.0f} mm"
    )


if __name__ == "__main__":
    run(main)
