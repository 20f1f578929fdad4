"""export stage: models/student -> the deploy bundle (policy.onnx, deploy.json, motion.npz).

usage: python stages/export.py STUDENT_DIR ROBOT_MOTION_DIR OUT_DIR
Reads params.yaml `robot`, `export` (clip: the reference shipped in the bundle, seconds: its length when the
clip is looped) and `train.loop` (clips looped in training are looped here the same way).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.errors import InputError
from pipeline.stage import params, run

KEYS = {"clip", "seconds"}


def main(argv: list[str]) -> None:
    student_dir, motion_dir, out_dir = (Path(a) for a in argv)
    cfg = params("export")
    unknown = set(cfg) - KEYS
    if unknown:
        raise InputError("params.yaml", f"export: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
    from pipeline.io import sha256_file
    from pipeline.learn.export import export_bundle
    from pipeline.learn.student import FILE, load_student
    from pipeline.robot.motion import RobotMotion

    clip = str(cfg["clip"])
    motion = RobotMotion.load(motion_dir / f"{clip}.npz", robot=params("robot"))
    cyclic = clip in params("train", "loop") or bool(motion.source.get("cyclic"))
    motion = dataclasses.replace(motion, source={**motion.source, "clip": clip, "cyclic": cyclic})
    student = load_student(student_dir)
    contract = export_bundle(
        student.actor, student.normalizer, motion, out_dir, history=student.history,
        control_dt=student.control_dt, seconds=float(cfg.get("seconds", 10.0)),
        source={"student": str(student_dir / FILE), "student_sha256": sha256_file(student_dir / FILE),
                "method": student.method, "clip": clip},
    )  # fmt: skip
    print(f"export: {out_dir} ({contract.motion['frames']} reference frames of '{clip}', history "
          f"{contract.history}, onnx vs torch {contract.policy['onnx_vs_torch_max_abs']:.1e})")  # fmt: skip


if __name__ == "__main__":
    run(main)
