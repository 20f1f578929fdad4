"""``mimic deploy``: load a bundle, connect to a robot interface, run, write the log, report."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipeline.deploy.contract import load_bundle
from pipeline.deploy.interfaces import DdsInterface, RobotInterface, SimInterface
from pipeline.deploy.runtime import RunConfig, RunResult, Runtime, save_log
from pipeline.errors import InputError, MimicError

DEFAULT_LOG_DIR = Path("build/deploy-logs")


class DeployFault(MimicError):
    """The run ended in damping mode (a fault or an e-stop); the message says which."""

    exit_code = 3


def connect(kind: str, *, control_dt: float, robot: str = "g1", iface: str | None = None, domain: int = 0,
            hold_s: float = 0.0) -> RobotInterface:  # fmt: skip
    if kind == "sim":
        return SimInterface(robot, control_dt=control_dt, hold_s=hold_s, realtime=False)
    if kind == "dds":
        return DdsInterface(robot, domain=domain, iface=iface)
    raise InputError("--robot", f"unknown robot interface '{kind}' (sim or dds)")


def summary(result: RunResult) -> dict[str, float]:
    """Loop timing statistics (ms) over the policy steps."""
    log = result.log
    pol = log["phase"] == 2
    out: dict[str, float] = {"policy_steps": float(result.policy_steps)}
    for key in ("compute_ms", "obs_infer_ms", "read_ms", "send_ms", "state_age_ms"):
        v = log[key][pol]
        v = v[np.isfinite(v)]
        if v.size:
            out[f"{key[:-3]}_p50_ms"] = float(np.percentile(v, 50))
            out[f"{key[:-3]}_p99_ms"] = float(np.percentile(v, 99))
    return out


def deploy(bundle_dir: str | Path, kind: str, *, iface: str | None = None, domain: int = 0,
           robot: str = "g1", dry_run: bool = False, log_path: str | Path | None = None,
           hold_s: float = 0.0, cfg: RunConfig | None = None) -> RunResult:  # fmt: skip
    """Run a bundle; the log is written even when the run ends in a fault (then DeployFault is raised)."""
    bundle = load_bundle(bundle_dir)
    cfg = cfg or RunConfig(dry_run=dry_run)
    itf = connect(kind, control_dt=bundle.contract.control_dt, robot=robot, iface=iface, domain=domain,
                  hold_s=hold_s)  # fmt: skip
    if isinstance(itf, SimInterface) and cfg.start_pose == "reference":
        itf.sim.stand_at_start(bundle)
    try:
        result = Runtime(bundle, itf, cfg).run()
    finally:
        itf.close()
    if log_path is None:
        log_path = DEFAULT_LOG_DIR / f"deploy-{time.strftime('%Y%m%d-%H%M%S')}-{kind}.npz"
    save_log(log_path, result.log)
    if not result.ok:
        raise DeployFault(f"{result.status}: {result.message}; damping mode engaged; log: {log_path}")
    return result
