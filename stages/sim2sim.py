"""sim2sim stage: the deploy bundle drives `mimic sim-robot` through DDS (rt/lowcmd, rt/lowstate) on loopback.

usage: python stages/sim2sim.py BUNDLE_DIR REPORT_JSON
Reads params.yaml `sim2sim` (iface, hold_s, watchdog_ms, start_pose). Writes REPORT_JSON: success, mpkpe_mm, loop_p50_ms,
loop_p99_ms, faults (+ transport timings and the bridge's counters).
"""

from __future__ import annotations

from pipeline.errors import InputError
from pipeline.stage import params, run

KEYS = {"iface", "hold_s", "watchdog_ms", "start_pose"}


def main(argv: list[str]) -> None:
    bundle_dir, report = argv
    cfg = params("sim2sim")
    unknown = set(cfg) - KEYS
    if unknown:
        raise InputError("params.yaml", f"sim2sim: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
    from pipeline.deploy.safety import SafetyConfig
    from pipeline.deploy.sim2sim import run_sim2sim
    from pipeline.io import write_json

    safety = SafetyConfig(watchdog_s=float(cfg.get("watchdog_ms", 100.0)) / 1e3)
    out = run_sim2sim(bundle_dir, iface=str(cfg.get("iface", "lo")), hold_s=float(cfg.get("hold_s", 2.5)),
                      safety=safety, start_pose=str(cfg.get("start_pose", "default")))  # fmt: skip
    write_json(report, out)
    faults = "; ".join(f["message"] for f in out["faults"]) or "none"
    print(f"sim2sim: success={out['success']} mpkpe={out['mpkpe_mm']:.1f} mm loop p50/p99="
          f"{out['loop_p50_ms']:.3f}/{out['loop_p99_ms']:.3f} ms faults: {faults}")  # fmt: skip


if __name__ == "__main__":
    run(main)
