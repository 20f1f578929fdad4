"""sim2sim stage: the deploy bundle drives `mimic sim-robot` through DDS (rt/lowcmd, rt/lowstate) on loopback.

usage: python stages/sim2sim.py BUNDLE_DIR REPORT_JSON
Reads params.yaml `sim2sim` (iface, hold_s, watchdog_ms, start_pose, runs). Runs the bundle `runs` times against a
fresh bridge each time and writes REPORT_JSON (pipeline.deploy.sim2sim.combine): success (every run), success_rate,
mpkpe_mm, loop_p50_ms, loop_p99_ms, faults (+ transport timings, the bridge's counters and every run's report).
"""

from __future__ import annotations

from pipeline.errors import InputError
from pipeline.stage import params, run

KEYS = {"iface", "hold_s", "watchdog_ms", "start_pose", "runs"}


def main(argv: list[str]) -> None:
    bundle_dir, report = argv
    cfg = params("sim2sim")
    unknown = set(cfg) - KEYS
    if unknown:
        raise InputError("params.yaml", f"sim2sim: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
    from pipeline.deploy.safety import SafetyConfig
    from pipeline.deploy.sim2sim import combine, run_sim2sim
    from pipeline.io import write_json

    runs = cfg.get("runs", 1)
    if not isinstance(runs, int) or runs < 1:
        raise InputError("params.yaml", f"sim2sim.runs must be a whole number >= 1, got {runs!r}")
    safety = SafetyConfig(watchdog_s=float(cfg.get("watchdog_ms", 100.0)) / 1e3)
    setup = {"iface": str(cfg.get("iface", "lo")), "hold_s": float(cfg.get("hold_s", 2.5)), "safety": safety,
             "start_pose": str(cfg.get("start_pose", "default"))}  # fmt: skip
    trials = []
    for i in range(runs):
        t = run_sim2sim(bundle_dir, **setup)
        trials.append(t)
        print(
            f"sim2sim run {i + 1}/{runs}: success={t['success']} policy steps {t['policy_steps']}", flush=True
        )
    out = combine(trials)
    write_json(report, out)
    faults = "; ".join(f["message"] for f in out["faults"]) or "none"
    print(f"sim2sim: success={out['success']} ({sum(t['success'] for t in trials)} of {runs} runs) "
          f"mpkpe={out['mpkpe_mm']:.1f} mm loop p50/p99={out['loop_p50_ms']:.3f}/{out['loop_p99_ms']:.3f} ms "
          f"faults: {faults}")  # fmt: skip


if __name__ == "__main__":
    run(main)
