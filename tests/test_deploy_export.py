"""The bundle: single-file ONNX equal to torch within 1e-5, contract checks, refusal of a foreign bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.deploy.contract import ContractMismatch, check_robot, load_bundle
from pipeline.deploy.interfaces import SimInterface
from pipeline.deploy.policy import OnnxPolicy
from pipeline.deploy.runtime import Runtime
from pipeline.errors import InputError
from pipeline.robot.spec import load_robot
from tests.deploy_fixtures import Normalizer, make_bundle, mlp, obs_size


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("b") / "deploy", mlp(3, seed=1), history=3,
                       normalizer=Normalizer(obs_size() * 3))  # fmt: skip


def test_bundle_files_and_contract(bundle_dir: Path) -> None:
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["deploy.json", "motion.npz", "policy.onnx"]
    b = load_bundle(bundle_dir)
    spec = load_robot("g1")
    c = b.contract
    assert c.joint_names == spec.joint_names and c.history == 3 and c.control_dt == 0.02
    np.testing.assert_array_equal(c.kp, spec.kp)
    np.testing.assert_array_equal(c.default_joint_pos, spec.default_pos)
    assert b.motion.fps == 50.0 and b.motion.joint_pos.shape == (100, 29)
    assert set(c.versions) >= {"torch", "onnxruntime", "mujoco"} and len(c.policy["sha256"]) == 64


def test_onnxruntime_matches_torch(tmp_path: Path) -> None:
    actor, norm = mlp(1, seed=5), Normalizer(obs_size())
    out = make_bundle(tmp_path / "deploy", actor, normalizer=norm)
    c = load_bundle(out).contract
    policy = OnnxPolicy(out / "policy.onnx", obs_size=c.obs_size, num_actions=c.num_joints)
    x = torch.randn(200, c.obs_size, generator=torch.Generator().manual_seed(7)) * 2
    with torch.no_grad():
        want = actor(norm(x)).numpy()
    got = np.stack([policy(x[i].numpy()) for i in range(len(x))])
    assert np.abs(got - want).max() <= 1e-5
    assert np.abs(want).max() > 0.05  # not a trivial network


def test_changed_policy_file_is_refused(tmp_path: Path, bundle_dir: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    (copy / "policy.onnx").write_bytes((copy / "policy.onnx").read_bytes() + b"\0")
    with pytest.raises(InputError, match="sha256 differs"):
        load_bundle(copy)


def test_unknown_key_is_refused(tmp_path: Path, bundle_dir: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    raw = json.loads((copy / "deploy.json").read_text())
    raw["surprise"] = 1
    (copy / "deploy.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match="unknown keys"):
        load_bundle(copy)


@pytest.mark.parametrize("change", ["robot", "order", "count", "kp", "kd"])
def test_foreign_bundle_is_refused_before_any_command(tmp_path: Path, bundle_dir: Path, change: str) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    raw = json.loads((copy / "deploy.json").read_text())
    if change == "robot":
        raw["robot"] = "h1"
    elif change == "order":
        raw["joint_names"][0], raw["joint_names"][6] = raw["joint_names"][6], raw["joint_names"][0]
    elif change == "count":
        for key in ("joint_names", "default_joint_pos", "kp", "kd", "action_scale", "effort_limit",
                    "joint_pos_lower", "joint_pos_upper"):  # fmt: skip
            raw[key] = raw[key][:23]
    else:
        raw[change][3] *= 1.5
    (copy / "deploy.json").write_text(json.dumps(raw))
    iface = SimInterface(control_dt=0.02)
    with pytest.raises(InputError) as err:
        b = load_bundle(copy)
        Runtime(b, iface)
    assert {"robot": "robot is 'h1'", "order": "joint order differs at index 0", "count": "contract has 23",
            "kp": "kp of left_knee_joint", "kd": "kd of left_knee_joint"}[change] in str(err.value)  # fmt: skip
    assert change == "count" or isinstance(err.value, ContractMismatch)
    assert iface.sim.command is None and iface.sim.time == 0.0


def test_check_robot_accepts_its_own_robot(bundle_dir: Path) -> None:
    spec = load_robot("g1")
    check_robot(
        load_bundle(bundle_dir).contract, robot="g1", joint_names=spec.joint_names, kp=spec.kp, kd=spec.kd
    )


def test_runtime_imports_neither_torch_nor_training_code() -> None:
    code = (
        "import sys, pipeline.deploy.run, pipeline.deploy.bridge, pipeline.deploy.runtime, pipeline.deploy.dds;"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'pipeline.sim', 'pipeline.learn'))];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
