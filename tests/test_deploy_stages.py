"""The export and sim2sim stages end to end on a student file (a residual student with a zero MLP: it servoes
the reference exactly), with their own params file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.deploy.contract import load_bundle
from pipeline.deploy.policy import ObsHistory, OnnxPolicy
from pipeline.learn.student import StudentPolicy, save_student
from pipeline.robot.spec import load_robot
from tests.deploy_fixtures import obs_size, sway_motion

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    spec = load_robot("g1")
    arch = {"hidden": [32], "ff_offset": spec.default_pos.tolist(), "ff_scale": spec.action_scale.tolist()}
    policy = StudentPolicy("distill", 2, obs_size(), spec.num_joints, arch)
    with torch.no_grad():
        policy.actor.mlp[-1].weight.zero_()
        policy.actor.mlp[-1].bias.zero_()
    (root / "models" / "student").mkdir(parents=True)
    save_student(root / "models/student/student.pt", policy, num_actions=29, control_dt=0.02, arch=arch)
    (root / "data" / "robot").mkdir(parents=True)
    sway_motion(1.0).save(root / "data/robot/sway.npz")
    params = {"robot": "g1", "train": {"loop": []}, "export": {"clip": "sway", "seconds": 5.0},
              "sim2sim": {"iface": "lo", "hold_s": 100.0, "watchdog_ms": 300.0, "runs": 2}}  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run(
        [sys.executable, str(REPO / "stages/export.py"), "models/student", "data/robot", "build/deploy"],
        cwd=root, env={**os.environ, "MIMIC_PARAMS": str(root / "params.yaml"), "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return root


def test_export_stage_writes_a_bundle_of_the_student(project: Path) -> None:
    b = load_bundle(project / "build/deploy")
    c = b.contract
    assert c.history == 2 and c.source["clip"] == "sway" and len(c.source["student_sha256"]) == 64
    assert b.motion.num_frames == 50  # a non-looped 1 s clip at 50 Hz
    policy = OnnxPolicy(b.policy_path, obs_size=2 * c.obs_size, num_actions=c.num_joints)
    hist = ObsHistory(2, c.obs_size)
    frame = np.random.default_rng(0).normal(size=c.obs_size)
    frame[: c.num_joints] = b.motion.joint_pos[7]  # ref_joint_pos term of the newest frame
    action = policy(hist.push(frame))
    np.testing.assert_allclose(
        c.default_joint_pos + c.action_scale * action, b.motion.joint_pos[7], atol=1e-5
    )


@pytest.mark.slow
def test_sim2sim_stage_reports(project: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "stages/sim2sim.py"), "build/deploy", "reports/sim2sim.json"],
        cwd=project, env={**os.environ, "MIMIC_PARAMS": str(project / "params.yaml"), "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads((project / "reports/sim2sim.json").read_text())
    assert report["success"] is True and report["faults"] == []
    assert report["runs"] == 2 and report["success_rate"] == 1.0 and len(report["trials"]) == 2
    assert report["policy_steps"] == 50 and 0.0 < report["mpkpe_mm"] < 100.0
    assert 0.0 < report["loop_p50_ms"] <= report["loop_p99_ms"]
    assert report["bridge"]["commands"] >= 50 and report["bridge"]["bad_crc"] == 0


def test_sim2sim_runs_combine_into_one_report() -> None:
    from pipeline.deploy.sim2sim import combine

    def trial(ok: bool, steps: int, p50: float, p99: float) -> dict:
        faults = [] if ok else [{"fault": "TILT", "message": "fall detected"}]
        return {"success": ok, "policy_steps": steps, "mpkpe_mm": 100.0 * steps / 50, "loop_p50_ms": p50,
                "loop_p99_ms": p99, "faults": faults, "reference_frames": 50}  # fmt: skip

    out = combine([trial(True, 50, 0.1, 0.3), trial(False, 20, 0.2, 0.9), trial(True, 50, 0.3, 0.2)])
    assert out["success"] is False and out["success_rate"] == pytest.approx(2 / 3) and out["runs"] == 3
    assert out["policy_steps"] == 20 and out["loop_p50_ms"] == 0.2 and out["loop_p99_ms"] == 0.9
    assert out["faults"] == [{"run": 1, "fault": "TILT", "message": "fall detected"}]
    assert out["mpkpe_mm"] == pytest.approx(80.0) and len(out["trials"]) == 3
