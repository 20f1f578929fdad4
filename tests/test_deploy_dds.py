"""The runtime against `mimic sim-robot` over CycloneDDS on loopback, with injected faults.

Each test starts its own bridge process on a random DDS domain (no crosstalk), with bounded timeouts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "unitree_sdk2py", reason="the DDS interface needs `make setup` (CycloneDDS 0.10 + Unitree SDK)"
)

from pipeline.deploy.bridge import TRACE_FORMAT, TRACE_VERSION
from pipeline.deploy.contract import ContractMismatch, load_bundle
from pipeline.deploy.interfaces import DdsInterface
from pipeline.deploy.runtime import Phase, RunConfig, RunResult, Runtime
from pipeline.deploy.safety import Fault, SafetyConfig
from pipeline.io import json_field, load_npz
from tests.deploy_fixtures import NanAfter, TrackReference, make_bundle

REPO = Path(__file__).resolve().parents[1]
SAFETY = SafetyConfig(
    soft_start_s=0.3, settle_s=0.1, damping_s=0.3, watchdog_s=0.3, first_state_timeout_s=15.0
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "track": make_bundle(root / "track", TrackReference(), seconds=1.0),
        "nan": make_bundle(root / "nan", NanAfter(), seconds=1.0),
    }


def _domain() -> int:
    return random.Random(os.getpid() * 1000 + time.time_ns()).randint(100, 230)


@contextmanager
def bridge(tmp_path: Path, *extra: str) -> Iterator[tuple[int, subprocess.Popen[str], Path]]:
    domain, record = _domain(), tmp_path / f"trace-{time.time_ns()}.npz"
    cmd = [sys.executable, "-m", "pipeline.cli", "sim-robot", "--domain", str(domain), "--iface", "lo",
           "--hold-s", "30", "--duration", "60", "--record", str(record), *extra]  # fmt: skip
    err = open(tmp_path / f"bridge-{domain}.err", "w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
    ready = threading.Event()

    def wait_ready() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("sim-robot ready"):
                ready.set()

    threading.Thread(target=wait_ready, daemon=True).start()
    try:
        if not ready.wait(90):
            raise AssertionError(
                f"sim-robot did not start ({proc.poll()}): {(tmp_path / err.name).read_text()}"
            )
        yield domain, proc, record
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        err.close()


def _run(bundle: Path, domain: int) -> RunResult:
    iface = DdsInterface("g1", domain=domain, iface="lo")
    try:
        return Runtime(load_bundle(bundle), iface, RunConfig(safety=SAFETY, keyboard=False)).run()
    finally:
        iface.close()


def _stats(proc: subprocess.Popen[str], record: Path) -> dict:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    return json_field(load_npz(record, TRACE_FORMAT, TRACE_VERSION), "stats")


def test_run_through_dds_tracks_the_reference(tmp_path: Path, bundles: dict[str, Path]) -> None:
    with bridge(tmp_path) as (domain, proc, record):
        result = _run(bundles["track"], domain)
        stats = _stats(proc, record)
    b = load_bundle(bundles["track"])
    assert result.ok, result.message
    assert result.policy_steps == b.motion.num_frames
    assert stats["commands"] >= result.policy_steps and stats["bad_crc"] == 0
    pol = result.log["phase"] == Phase.POLICY
    np.testing.assert_allclose(result.log["cmd_q"][pol], b.motion.joint_pos, atol=2e-6)
    # the bridge applied the commands: the held robot's moving joints swing (it may run behind real time)
    ref_range = np.ptp(b.motion.joint_pos, axis=0)
    moving = ref_range > 0.2
    got_range = np.ptp(result.log["joint_pos"][pol], axis=0)
    assert moving.sum() >= 2 and (got_range[moving] > 0.5 * ref_range[moving]).all(), got_range[moving]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "expect", "text"),
    [("drop", Fault.STALE_STATE, "ms old"), ("stall", Fault.STALE_STATE, "ms old"),
     ("bad-crc", Fault.BAD_CRC, "wrong CRC")],
)  # fmt: skip
def test_lowstate_faults_end_in_damping(tmp_path: Path, bundles: dict[str, Path], fault: str, expect: Fault,
                                        text: str) -> None:  # fmt: skip
    with bridge(tmp_path, "--fault", fault, "--fault-at", "0.8") as (domain, proc, record):
        result = _run(bundles["track"], domain)
        stats = _stats(proc, record)
    assert result.status == "fault" and result.fault == expect and text in result.message, result.message
    log = result.log
    damp = log["phase"] == Phase.DAMPING
    assert damp.any() and (log["cmd_kp"][damp] == 0).all() and (log["cmd_kd"][damp] > 0).all()
    assert stats["last_kp_max"] == 0.0  # damping reached the robot


def test_bridge_killed_mid_run(tmp_path: Path, bundles: dict[str, Path]) -> None:
    with bridge(tmp_path) as (domain, proc, _):
        killer = threading.Timer(1.0, proc.kill)
        killer.start()
        try:
            result = _run(bundles["track"], domain)
        finally:
            killer.cancel()
    assert result.fault == Fault.STALE_STATE and "watchdog" in result.message
    assert (result.log["cmd_kp"][result.log["phase"] == Phase.DAMPING] == 0).all()


@pytest.mark.slow
def test_nan_policy_output_over_dds(tmp_path: Path, bundles: dict[str, Path]) -> None:
    with bridge(tmp_path) as (domain, proc, record):
        result = _run(bundles["nan"], domain)
        stats = _stats(proc, record)
    assert result.fault == Fault.NAN_ACTION and "not finite" in result.message
    assert stats["last_kp_max"] == 0.0


def test_foreign_bundle_is_refused_over_dds(tmp_path: Path, bundles: dict[str, Path]) -> None:
    copy = tmp_path / "foreign"
    shutil.copytree(bundles["track"], copy)
    raw = json.loads((copy / "deploy.json").read_text())
    raw["kd"][12] = 9.0
    (copy / "deploy.json").write_text(json.dumps(raw))
    with bridge(tmp_path) as (domain, proc, record):
        with pytest.raises(ContractMismatch, match="kd of waist_yaw_joint is 9, the robot uses"):
            _run(copy, domain)
        time.sleep(0.3)
        stats = _stats(proc, record)
    assert stats["commands"] == 0


def test_no_robot_is_a_fault(bundles: dict[str, Path]) -> None:
    iface = DdsInterface("g1", domain=_domain(), iface="lo")
    cfg = RunConfig(safety=SafetyConfig(first_state_timeout_s=0.5, damping_s=0.1), keyboard=False)
    result = Runtime(load_bundle(bundles["track"]), iface, cfg).run()
    iface.close()
    assert result.fault == Fault.NO_STATE and "no robot state received" in result.message


@pytest.mark.slow
def test_cli_deploy_over_dds_under_300_mib(tmp_path: Path, bundles: dict[str, Path]) -> None:
    """`mimic deploy --robot dds` in a fresh process (the configuration that runs on the robot): exit 0, a log,
    peak RSS < 300 MiB."""
    with bridge(tmp_path) as (domain, _, _):
        argv = ["deploy", "--bundle", str(bundles["track"]), "--robot", "dds", "--iface", "lo", "--domain",
                str(domain), "--log", str(tmp_path / "log.npz"), "--watchdog-ms", "300"]  # fmt: skip
        code = (
            f"import sys; from pipeline.cli import main; rc = main({argv!r});"
            # VmHWM: the peak of this process image (ru_maxrss would include the forking pytest process)
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1];"
            "print('RSS_MIB', int(hwm) / 1024); sys.exit(rc)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
        )
    assert out.returncode == 0, out.stderr
    assert "tracked 50 reference frames" in out.stdout
    assert float(out.stdout.split("RSS_MIB")[1]) < 300.0, out.stdout
    assert (tmp_path / "log.npz").is_file()
