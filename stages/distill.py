"""distill stage: models/teacher/policy.pt + data/robot/<clip>.npz (train.clips) -> models/student/.

usage: python stages/distill.py ROBOT_MOTION_DIR TEACHER_DIR OUT_DIR
Reads params.yaml `robot`, `train` (the task and its randomization) and `distill`. Writes OUT_DIR/student.pt
(pipeline/learn/student.py says how to load it), OUT_DIR/curves.csv and OUT_DIR/metrics.json.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.stage import params, run


def main(argv: list[str]) -> None:
    motion_dir, teacher_dir, out_dir = (Path(a) for a in argv)
    from pipeline.io import write_json
    from pipeline.learn.distill import config_from_dict, distill
    from pipeline.learn.teacher import load_motions
    from pipeline.sim.config import from_dict

    tcfg = dataclasses.replace(from_dict(params("train")), robot=params("robot"))
    dcfg = config_from_dict(params("distill"))
    motions, names = load_motions(tcfg, motion_dir)
    summary = distill(dcfg, tcfg, motions, names, teacher_dir / "policy.pt", out_dir)
    write_json(out_dir / "metrics.json", summary)
    print("student: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    run(main)
