"""Retargeting throughput: `python benchmarks/retarget.py --clip PATH` prints one JSON line.

Times the full `retarget()` of the clip (scaling, the per-frame IK QP with every constraint on, RobotMotion FK,
quality report) on one core, after the robot model is built, the clip read and one untimed warm-up run (it
loads the compiled kernels: its time is printed as ``first_run_seconds``): wall time and the process's
CPU time (the machine is shared; the 1-minute load average is printed too). As the in-run reference it times
a plain pinocchio pass over the same frames: one computeJointJacobians + updateFramePlacements each.
``--compare proxsuite`` also times the same retargeting with another QP back end.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--robot", default="g1")
    ap.add_argument("--solver", default="daqp")
    ap.add_argument("--compare", default="", help="comma-separated other solvers to time on the same clip")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs")
    a = ap.parse_args()

    import numpy as np
    import pinocchio as pin

    from pipeline.motion import read_clip
    from pipeline.retarget import RetargetConfig, retarget
    from pipeline.retarget.kinematics import robot_kinematics
    from pipeline.robot.model import qpos_mj_to_pin

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    human = read_clip(a.clip)
    kin = robot_kinematics(a.robot)
    cfg = RetargetConfig(solver=a.solver)
    t0 = time.perf_counter()
    retarget(human, a.robot, cfg)  # warm-up: numba's first use in the process (~0.3 s), cached kernels
    first = time.perf_counter() - t0
    best = best_cpu = float("inf")
    for _ in range(a.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        motion, qual = retarget(human, a.robot, cfg)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    frames = motion.num_frames
    others = {}
    for name in filter(None, a.compare.split(",")):
        c0 = time.process_time()
        retarget(human, a.robot, RetargetConfig(solver=name))
        others[f"{name}_frames_per_cpu_s"] = round(frames / (time.process_time() - c0), 1)

    # Reference: a plain pinocchio FK + Jacobian pass over the same configurations.
    model = kin.model
    data = model.createData()  # type: ignore[attr-defined]
    qs = qpos_mj_to_pin(motion.qpos)
    t0 = time.perf_counter()
    for q in qs:
        pin.computeJointJacobians(model, data, q)
        pin.updateFramePlacements(model, data)
    ref = time.perf_counter() - t0
    load = os.getloadavg()[0]
    print(
        json.dumps(
            {
                "clip": Path(a.clip).name,
                "robot": a.robot,
                "solver": a.solver,
                "frames": frames,
                "first_run_seconds": round(first, 4),
                "seconds": round(best, 4),
                "frames_per_s": round(frames / best, 1),
                "cpu_seconds": round(best_cpu, 4),
                "frames_per_cpu_s": round(frames / best_cpu, 1),
                **others,
                "reference_fk_jacobian_seconds": round(ref, 5),
                "reference_frames_per_s": round(frames / ref, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "keypoint_err_mean_mm": qual["keypoint_err_mean_mm"],
                "qp_failures": motion.source.get("qp_failures"),
                "iterations_per_frame": cfg.iterations,
                "load_average_1min": round(load, 2),
                "cpus": os.cpu_count(),
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
