"""`dvc repro` end to end in a temporary copy of the repo on two clips and one clip with a scene (a holosoma
climbing demo clip: its robot scene is a declared output of its retarget stage): outputs, selective reruns,
determinism."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, SHARED_DATA

pytestmark = pytest.mark.slow
STAGES = ("default_clips", "extract", "retarget", "extract_scene", "retarget_scene")
SCENE_CLIP = "climb"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dvc(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the committed tree with a git repo, two clips (a default DeepMimic walk and a CMU BVH) and a
    scene clip (a climbing demo clip of the holosoma_retargeting wheel)."""
    dst = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    for f in ("dvc.lock",):
        (dst / f).unlink(missing_ok=True)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["default_clips"]["names"] = ["walk"]
    params["clips"] = {
        "walk": {"path": "motions/default/walk.txt", "format": "deepmimic"},
        "cmu": {"path": str(SHARED_DATA / "cmu" / "131_01.bvh")},
    }
    (dst / "motions").mkdir(exist_ok=True)
    (dst / "motions" / "climb.holosoma").write_text("clip: climb/mocap_climb_seq_3\n")
    params["scene_clips"] = {SCENE_CLIP: {"path": "motions/climb.holosoma", "format": "holosoma"}}
    # Only the stages of this issue: later stages (train, ...) are exercised by their own tests.
    stages = yaml.safe_load((dst / "dvc.yaml").read_text())
    stages["stages"] = {k: v for k, v in stages["stages"].items() if k in STAGES}
    (dst / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    return dst


def test_repro_builds_every_clip(repo):
    _dvc(repo, "repro")
    for clip in ("walk", "cmu"):
        assert (repo / "data" / "human" / f"{clip}.npz").is_file()
        assert (repo / "data" / "robot" / f"{clip}.npz").is_file()
        q = yaml.safe_load((repo / "data" / "robot" / f"{clip}.quality.json").read_text())
        assert q["frames"] > 0 and q["joint_limit_violations"] == 0
    assert "up to date" in _dvc(repo, "status") or "Data and pipelines are up to date" in _dvc(repo, "status")


def test_scene_clip_versions_its_scene_with_the_motion(repo):
    robot = repo / "data" / "robot"
    q = yaml.safe_load((robot / f"{SCENE_CLIP}.quality.json").read_text())
    assert q["method"] == "interaction" and q["frames"] > 0 and q["object_penetration_max_mm"] <= 10.0
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    outs = {o["path"]: o for o in lock[f"retarget_scene@{SCENE_CLIP}"]["outs"]}
    for suffix in (".npz", ".scene.npz", ".scene.xml"):
        path = f"data/robot/{SCENE_CLIP}{suffix}"
        assert path in outs and outs[path]["md5"], outs
        assert (repo / path).is_file()
    # Plain clips write no scene files.
    assert not list(robot.glob("walk.scene.*")) and not list(robot.glob("cmu.scene.*"))
    # The MJCF fragment loads with MuJoCo.
    import mujoco

    xml = robot / f"{SCENE_CLIP}.scene.xml"
    model = mujoco.MjModel.from_xml_string(f'<mujoco><include file="{xml}"/></mujoco>')
    assert model.nmesh >= 1


def test_retarget_param_change_reruns_retarget_not_extract(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["retarget"]["smoothing_sigma"] = 1.5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _dvc(repo, "repro")
    assert "Running stage 'retarget@walk'" in out and "Running stage 'retarget@cmu'" in out
    assert f"Running stage 'retarget_scene@{SCENE_CLIP}'" in out
    assert "Running stage 'extract@" not in out and "Running stage 'default_clips'" not in out


def test_outputs_are_byte_identical_when_rerun(repo):
    outs = sorted((repo / "data").rglob("*.npz")) + sorted((repo / "data").rglob("*.json"))
    outs += sorted((repo / "data").rglob("*.xml"))
    before = {p: _sha(p) for p in outs}
    _dvc(repo, "repro", "--force")
    assert {p: _sha(p) for p in outs} == before
