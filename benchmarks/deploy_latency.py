"""Deploy latency: the runtime's control-loop compute and the DDS round trip on loopback. Prints one JSON line.

- loop: the real runtime (pipeline.deploy.runtime) drives `mimic sim-robot` over DDS for a 10 s reference;
  compute = state checks + observation + inference + safety limits + the LowCmd_ wire encoding with its CRC
  (everything between reading the state and handing the message to DDS), per policy step.
- reference in the same run: onnxruntime inference alone on the same policy (the floor of the loop).
- rtt: rt/lowcmd -> an echo process -> rt/lowstate on loopback (CycloneDDS 0.10), 500 Hz, with the same codec.
- peak memory of this process (the runtime side: numpy, onnxruntime, mujoco, CycloneDDS; no torch): ru_maxrss and
  VmHWM (the same unless this process was forked from a larger one).

usage: python benchmarks/deploy_latency.py [--seconds 10] [--rtt-samples 1000]
Bar: loop compute p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAKE_BUNDLE = """
import sys, torch
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.deploy_fixtures import Normalizer, obs_size, sway_motion
from pipeline.learn.export import export_bundle
torch.manual_seed(0)
d = obs_size()
actor = torch.nn.Sequential(torch.nn.Linear(d, 512), torch.nn.ELU(), torch.nn.Linear(512, 256), torch.nn.ELU(),
                            torch.nn.Linear(256, 128), torch.nn.ELU(), torch.nn.Linear(128, 29))
export_bundle(actor, Normalizer(d), sway_motion({seconds}), Path({out!r}), history=1)
"""


def echo(domain: int) -> None:
    """Echo process: every LowCmd_ comes back as a LowState_ whose tick is the command's reserve[0]."""
    from cyclonedds.core import ReadCondition, SampleState, WaitSet
    from cyclonedds.util import duration

    from pipeline.deploy import dds
    from pipeline.deploy.cdr import Wire

    part = dds.Participant(domain, "lo")
    reader = part.reader(dds.LOWCMD_TOPIC, dds.lowcmd_type())
    writer = part.writer(dds.LOWSTATE_TOPIC, dds.lowstate_type())
    ws = WaitSet(part.participant)
    ws.attach(ReadCondition(reader, SampleState.NotRead))
    out = Wire("state")
    print("echo ready", flush=True)
    while True:
        ws.wait(duration(seconds=1))
        for data in dds.take_raw(reader, 8):
            out.v["tick"][0] = Wire("cmd", data).v["reserve"][0]
            out.v["crc"][0] = dds.wire_crc(out)
            dds.write_raw(writer, out.bytes())


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready = threading.Event()

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "ready" in line:
                ready.set()

    threading.Thread(target=watch, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        raise SystemExit(f"{args[:4]} did not start")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def rtt_ms(domain: int, samples: int) -> np.ndarray:
    from cyclonedds.core import ReadCondition, SampleState, WaitSet
    from cyclonedds.util import duration

    from pipeline.deploy import dds
    from pipeline.deploy.cdr import Wire
    from pipeline.deploy.state import MotorCommand

    proc = _spawn([sys.executable, __file__, "--echo", str(domain)])
    try:
        part = dds.Participant(domain, "lo")
        reader = part.reader(dds.LOWSTATE_TOPIC, dds.lowstate_type())
        writer = part.writer(dds.LOWCMD_TOPIC, dds.lowcmd_type())
        ws = WaitSet(part.participant)
        ws.attach(ReadCondition(reader, SampleState.NotRead))
        cw = dds.CommandWriter(29)
        cmd = MotorCommand.damping(np.zeros(29), np.ones(29))
        out = []
        for i in range(samples + 20):
            cw.wire.v["reserve"][0] = i
            t0 = time.perf_counter()
            dds.write_raw(writer, cw.fill(cmd))
            got = None
            while got != i and time.perf_counter() - t0 < 0.5:
                ws.wait(duration(milliseconds=100))
                for data in dds.take_raw(reader, 8):
                    got = int(Wire("state", data).v["tick"][0])
            if got == i and i >= 20:  # the first round trips (discovery) are not counted
                out.append((time.perf_counter() - t0) * 1e3)
            time.sleep(max(0.0, 0.002 - (time.perf_counter() - t0)))
        return np.asarray(out)
    finally:
        _stop(proc)


def _vmhwm_mib() -> float:
    """Peak RSS of this process image (/proc VmHWM; ru_maxrss also counts a parent's size at fork)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return round(kb / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rtt-samples", type=int, default=1000)
    ap.add_argument("--echo", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.echo is not None:
        echo(a.echo)
        return
    from pipeline.deploy.contract import load_bundle
    from pipeline.deploy.interfaces import DdsInterface
    from pipeline.deploy.policy import OnnxPolicy
    from pipeline.deploy.runtime import Phase, RunConfig, Runtime
    from pipeline.deploy.safety import SafetyConfig

    rng = random.Random(os.getpid() ^ time.time_ns())
    with tempfile.TemporaryDirectory(prefix="deploy-bench-") as tmp:
        bdir = Path(tmp) / "bundle"
        code = MAKE_BUNDLE.format(repo=str(REPO), seconds=a.seconds, out=str(bdir))
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)  # torch stays out of this process
        bundle = load_bundle(bdir)
        c = bundle.contract

        policy = OnnxPolicy(bundle.policy_path, obs_size=c.obs_size, num_actions=c.num_joints)
        x = np.random.default_rng(0).normal(size=c.obs_size)
        infer = []
        for _ in range(3000):
            t0 = time.perf_counter()
            policy(x)
            infer.append((time.perf_counter() - t0) * 1e3)

        domain = rng.randint(100, 230)
        bridge = _spawn([sys.executable, "-m", "pipeline.cli", "sim-robot", "--domain", str(domain), "--iface", "lo",
                         "--hold-s", "1000"])  # fmt: skip
        try:
            itf = DdsInterface("g1", domain=domain, iface="lo")
            safety = SafetyConfig(soft_start_s=0.5, settle_s=0.1, damping_s=0.2, watchdog_s=0.5)
            result = Runtime(bundle, itf, RunConfig(safety=safety, keyboard=False)).run()
            itf.close()
        finally:
            _stop(bridge)
        log = result.log
        pol = log["phase"] == Phase.POLICY
        compute, obs_infer = log["compute_ms"][pol], log["obs_infer_ms"][pol]
        rtt = rtt_ms(rng.randint(100, 230), a.rtt_samples)

    def p(v: np.ndarray, q: float) -> float:
        return round(float(np.percentile(v, q)), 4) if len(v) else float("nan")

    print(json.dumps({
        "benchmark": "deploy_latency",
        "policy": f"MLP {c.obs_size}-512-256-128-{c.num_joints} (+normalizer), history {c.history}",
        "run_status": result.status,
        "policy_steps": result.policy_steps,
        "loop_compute_p50_ms": p(compute, 50),
        "loop_compute_p99_ms": p(compute, 99),
        "loop_obs_infer_p50_ms": p(obs_infer, 50),
        "loop_obs_infer_p99_ms": p(obs_infer, 99),
        "reference_onnx_infer_p50_ms": p(np.asarray(infer), 50),
        "reference_onnx_infer_p99_ms": p(np.asarray(infer), 99),
        "dds_rtt_p50_ms": p(rtt, 50),
        "dds_rtt_p99_ms": p(rtt, 99),
        "dds_rtt_samples": len(rtt),
        "bar_loop_compute_p99_le_1ms": bool(p(compute, 99) <= 1.0),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_vmhwm_mib": _vmhwm_mib(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
