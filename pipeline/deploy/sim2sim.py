"""sim2sim: the bundle through the robot's transport (DDS on loopback) against ``mimic sim-robot``.

The bridge runs in its own process (like the robot), the runtime in this one, exactly as on hardware. Tracking
error (MPKPE) compares the tracked bodies of the simulated robot (from the bridge's recorded trajectory, at the
state the runtime read at control step k) with reference frame k, after the planar transform (x, y, yaw) that
puts the reference anchor at frame 0 onto the robot's anchor when the policy starts.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from pipeline.deploy.bridge import TRACE_FORMAT, TRACE_VERSION
from pipeline.deploy.contract import Bundle, load_bundle
from pipeline.deploy.interfaces import DdsInterface
from pipeline.deploy.observation import yaw_of
from pipeline.deploy.runtime import Phase, RunConfig, RunResult, Runtime
from pipeline.deploy.safety import SafetyConfig
from pipeline.errors import MimicError
from pipeline.io import json_field, load_npz
from pipeline.robot.model import mujoco_model


class BridgeFailed(MimicError):
    pass


def _start_bridge(domain: int, iface: str, hold_s: float, record: Path, log: Path,
                  start_bundle: Path | None) -> subprocess.Popen[str]:  # fmt: skip
    cmd = [sys.executable, "-m", "pipeline.cli", "sim-robot", "--domain", str(domain), "--iface", iface,
           "--hold-s", str(hold_s), "--record", str(record)]  # fmt: skip
    if start_bundle is not None:
        cmd += ["--start-bundle", str(start_bundle)]
    err = open(log, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    ready = threading.Event()

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("sim-robot ready"):
                ready.set()

    threading.Thread(target=watch, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        raise BridgeFailed(f"mimic sim-robot did not start: {log.read_text()[-500:]}")
    return proc


def tracking_error_mm(bundle: Bundle, result: RunResult, trace: dict[str, np.ndarray]) -> float:
    """Mean tracked-body position error over the policy steps, mm (see the module docstring)."""
    log, motion = result.log, bundle.motion
    pol = np.flatnonzero(log["phase"] == Phase.POLICY)
    if pol.size == 0:
        return float("nan")
    model = mujoco_model(bundle.contract.robot, floor=False, actuators=False)
    data = mujoco.MjData(model)
    bodies = [model.body(b).id for b in motion.body_names]
    anchor = model.body(bundle.contract.anchor_body).id
    row = {int(t): i for i, t in enumerate(trace["tick"])}
    robot_pos, frames = [], []
    anchor0 = None
    for i in pol:
        tick = int(log["state_tick"][i])
        if tick not in row:
            continue
        data.qpos[:] = trace["qpos"][row[tick]]
        mujoco.mj_kinematics(model, data)
        if anchor0 is None:
            anchor0 = (data.xpos[anchor].copy(), data.xquat[anchor].copy())
        robot_pos.append(data.xpos[bodies].copy())
        frames.append(int(log["frame"][i]))
    if anchor0 is None:
        return float("nan")
    dyaw = float(yaw_of(anchor0[1]) - yaw_of(motion.anchor_quat_w[0]))
    c, s = np.cos(dyaw), np.sin(dyaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    ref = motion.body_pos_w[frames] - motion.anchor_pos_w[0] * [1, 1, 0]
    ref = ref @ rot.T + anchor0[0] * [1, 1, 0]
    return float(np.linalg.norm(np.asarray(robot_pos) - ref, axis=-1).mean() * 1e3)


def combine(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from repeated runs of the same bundle (DDS timing differs between runs, and a fragile policy
    falls in some and not others): ``success`` only if every run tracked the whole reference, ``success_rate``,
    ``mpkpe_mm`` (mean), ``loop_p50_ms`` (median), ``loop_p99_ms`` (worst), every fault with its run index,
    ``policy_steps`` (fewest), the other fields of the first run, and every run's report under ``trials``."""
    ok = [bool(t["success"]) for t in trials]
    return {
        **trials[0],
        "success": all(ok),
        "success_rate": sum(ok) / len(ok),
        "runs": len(trials),
        "mpkpe_mm": float(np.mean([t["mpkpe_mm"] for t in trials])),
        "loop_p50_ms": float(np.median([t["loop_p50_ms"] for t in trials])),
        "loop_p99_ms": float(max(t["loop_p99_ms"] for t in trials)),
        "faults": [{"run": i, **f} for i, t in enumerate(trials) for f in t["faults"]],
        "policy_steps": min(int(t["policy_steps"]) for t in trials),
        "trials": trials,
    }


def run_sim2sim(bundle_dir: str | Path, *, iface: str = "lo", domain: int | None = None, hold_s: float = 2.5,
                safety: SafetyConfig | None = None, start_pose: str = "default") -> dict[str, Any]:  # fmt: skip
    """Run the bundle against a fresh ``mimic sim-robot``; returns the report (reports/sim2sim.json)."""
    bundle = load_bundle(bundle_dir)
    domain = domain if domain is not None else random.Random(os.getpid() ^ time.time_ns()).randint(100, 230)
    safety = safety or SafetyConfig()
    with tempfile.TemporaryDirectory(prefix="sim2sim-") as tmp:
        record, blog = Path(tmp) / "trace.npz", Path(tmp) / "bridge.log"
        # with start_pose "reference" the robot stands in the reference's first frame from the start
        start = Path(bundle_dir) if start_pose == "reference" else None
        proc = _start_bridge(domain, iface, hold_s, record, blog, start)
        try:
            itf = DdsInterface(bundle.contract.robot, domain=domain, iface=iface)
            try:
                result = Runtime(
                    bundle, itf, RunConfig(safety=safety, keyboard=False, start_pose=start_pose)
                ).run()
            finally:
                itf.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        trace = load_npz(record, TRACE_FORMAT, TRACE_VERSION)
        stats = json_field(trace, "stats")
    log = result.log
    pol = log["phase"] == Phase.POLICY

    def pct(key: str, q: float) -> float:
        v = log[key][pol]
        v = v[np.isfinite(v)]
        return float(np.percentile(v, q)) if v.size else float("nan")

    return {
        "success": bool(result.ok and result.policy_steps == bundle.motion.num_frames),
        "mpkpe_mm": tracking_error_mm(bundle, result, trace),
        "loop_p50_ms": pct("compute_ms", 50),
        "loop_p99_ms": pct("compute_ms", 99),
        "read_p99_ms": pct("read_ms", 99),
        "send_p99_ms": pct("send_ms", 99),
        "state_age_p99_ms": pct("state_age_ms", 99),
        "faults": [] if result.ok else [{"fault": result.fault.name, "message": result.message}],
        "policy_steps": result.policy_steps,
        "reference_frames": bundle.motion.num_frames,
        "bridge": stats,
        "transport": f"CycloneDDS on {iface}, domain {domain}",
        "policy_sha256": bundle.contract.policy["sha256"],
    }
