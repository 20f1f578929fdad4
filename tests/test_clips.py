"""Default clips from the installed package, params.yaml registration, and `add_clip` with a real `dvc add`."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pybullet_data
import pytest
import yaml

from pipeline.cli import main as cli_main
from pipeline.clips import add_clip, available_default_clips, materialise_default_clips, register_clip
from pipeline.errors import InputError

CMU_01 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu" / "131_01.bvh"
needs_cmu = pytest.mark.skipif(not CMU_01.is_file(), reason="CMU clips not available")
MOTIONS = Path(pybullet_data.getDataPath()) / "data" / "motions"


def test_materialise_default_clips(tmp_path: Path) -> None:
    assert {"walk", "run", "jump", "dance_a", "spinkick"} <= set(available_default_clips())
    record = materialise_default_clips(tmp_path, ["walk", "kick"])
    for name, cyclic in (("walk", True), ("kick", False)):
        src = MOTIONS / f"humanoid3d_{name}.txt"
        dest = tmp_path / f"{name}.txt"
        assert dest.read_bytes() == src.read_bytes()
        clip = record["clips"][name]
        assert clip["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert clip["package_version"] == importlib.metadata.version("pybullet")
        assert clip["licence"] == "zlib" and clip["cyclic"] is cyclic
        assert clip["source"].endswith(f"data/motions/humanoid3d_{name}.txt")
    assert json.loads((tmp_path / "sources.json").read_text()) == record
    first = (tmp_path / "sources.json").read_bytes()
    materialise_default_clips(tmp_path, ["walk", "kick"])
    assert (tmp_path / "sources.json").read_bytes() == first  # deterministic
    with pytest.raises(InputError, match="not in pybullet"):
        materialise_default_clips(tmp_path / "x", ["moonwalk"])
    assert not (tmp_path / "x").exists()


PARAMS = """# Pipeline parameters.
robot: g1

# clips the pipeline builds
clips:
  walk: {path: motions/default/walk.txt, format: deepmimic}
  # a comment inside the block

extract:
  fps: 50.0  # target rate
"""


def test_register_clip_is_a_minimal_edit(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(PARAMS)
    register_clip(p, "dance", {"path": "motions/raw/dance.bvh", "format": "bvh"})
    text = p.read_text()
    assert text.replace("  dance: {path: motions/raw/dance.bvh, format: bvh}\n", "") == PARAMS
    assert text.index("dance:") < text.index("# a comment inside")
    data = yaml.safe_load(text)
    assert list(data["clips"]) == ["walk", "dance"] and data["extract"] == {"fps": 50.0}
    with pytest.raises(InputError, match="already registered"):
        register_clip(p, "dance", {"path": "x.bvh"})
    for start in ("robot: g1\n", "robot: g1\nclips: {}\nextract: {fps: 50}\n", ""):
        p.write_text(start)
        register_clip(p, "a", {"path": "motions/raw/a.bvh", "format": "bvh"})
        data = yaml.safe_load(p.read_text())
        assert data["clips"] == {"a": {"path": "motions/raw/a.bvh", "format": "bvh"}}
        assert {k: v for k, v in data.items() if k != "clips"} == {
            k: v for k, v in (yaml.safe_load(start) or {}).items() if k != "clips"
        }


@pytest.fixture(scope="module")
def dvc_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("template")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=repo, env=env, check=True)
    (repo / "params.yaml").write_text(PARAMS)
    return repo


@pytest.fixture
def dvc_repo(dvc_template: Path, tmp_path: Path) -> Path:
    """A fresh DVC repository (no git) holding PARAMS as params.yaml."""
    return Path(shutil.copytree(dvc_template, tmp_path / "repo"))


def _tree(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".dvc/" not in str(p.relative_to(repo)) + "/"
    }


@needs_cmu
def test_add_clip_copies_tracks_and_registers(dvc_repo: Path) -> None:
    dest = add_clip(CMU_01, name="cmu_walk", root=dvc_repo)
    assert dest == dvc_repo / "motions" / "raw" / "cmu_walk.bvh"
    assert dest.read_bytes() == CMU_01.read_bytes()
    dvc_file = yaml.safe_load((dvc_repo / "motions" / "raw" / "cmu_walk.bvh.dvc").read_text())
    assert dvc_file["outs"][0]["path"] == "cmu_walk.bvh"
    clips = yaml.safe_load((dvc_repo / "params.yaml").read_text())["clips"]
    assert clips["cmu_walk"] == {"path": "motions/raw/cmu_walk.bvh", "format": "bvh"}
    # the same name again is refused and nothing changes
    before = _tree(dvc_repo)
    with pytest.raises(InputError, match="already exists"):
        add_clip(MOTIONS / "humanoid3d_walk.txt", name="cmu_walk", root=dvc_repo)
    with pytest.raises(InputError, match="already exists"):
        add_clip(MOTIONS / "humanoid3d_walk.txt", name="walk", root=dvc_repo)
    assert _tree(dvc_repo) == before


def test_add_clip_registers_a_scene_clip_for_the_interaction_stages(dvc_repo: Path) -> None:
    pointer = Path(__file__).resolve().parents[1] / "motions" / "holosoma" / "mocap_climb_seq_3.holosoma"
    pytest.importorskip("torch")
    add_clip(pointer, name="climb", root=dvc_repo)
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    assert params["scene_clips"]["climb"] == {"path": "motions/raw/climb.holosoma", "format": "holosoma"}
    assert "climb" not in params["clips"]
    with pytest.raises(InputError, match="already exists"):  # names are unique across both sections
        add_clip(MOTIONS / "humanoid3d_walk.txt", name="climb", root=dvc_repo)


def test_add_clip_refuses_bad_files_before_touching_anything(dvc_repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n")
    before = _tree(dvc_repo)
    with pytest.raises(InputError, match="truncated BVH"):
        add_clip(bad, root=dvc_repo)
    with pytest.raises(InputError, match="clip name"):
        add_clip(MOTIONS / "humanoid3d_walk.txt", name="../evil", root=dvc_repo)
    with pytest.raises(InputError, match="unknown clip format"):
        add_clip(Path(__file__), root=dvc_repo)
    assert _tree(dvc_repo) == before
    assert not (dvc_repo / "motions").exists()


def test_cli_add_clip_exit_status(dvc_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "short.txt"
    bad.write_text(json.dumps({"Loop": "wrap", "Frames": [[0.1] * 40]}))
    cwd = Path.cwd()
    os.chdir(dvc_repo)
    try:
        assert cli_main(["add-clip", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(bad) in err and "44" in err
        assert cli_main(["add-clip", str(MOTIONS / "humanoid3d_kick.txt"), "--name", "kick"]) == 0
    finally:
        os.chdir(cwd)
    assert yaml.safe_load((dvc_repo / "params.yaml").read_text())["clips"]["kick"]["format"] == "deepmimic"


@needs_cmu
def test_add_clip_with_joint_map_keeps_the_map(dvc_repo: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd.bvh"
    odd.write_text(CMU_01.read_text().replace("Chest2", "UpperChest"))
    with pytest.raises(InputError, match="unknown skeleton"):
        add_clip(odd, root=dvc_repo)
    from pipeline.motion.skeletons import CMU_ASF

    jm = tmp_path / "map.yaml"
    jm.write_text(yaml.safe_dump({**CMU_ASF, "torso": "UpperChest"}))
    add_clip(odd, root=dvc_repo, joint_map=str(jm), unit="cmu")
    entry = yaml.safe_load((dvc_repo / "params.yaml").read_text())["clips"]["odd"]
    assert entry == {
        "path": "motions/raw/odd.bvh",
        "format": "bvh",
        "joint_map": "motions/raw/odd.joints.yaml",
        "unit": "cmu",
    }
    assert (dvc_repo / entry["joint_map"]).read_bytes() == jm.read_bytes()
    from pipeline.motion import read_clip

    cwd = Path.cwd()
    os.chdir(dvc_repo)
    try:  # what the extract stage does with the registered entry
        m = read_clip(entry["path"], fmt=entry["format"], joint_map=entry["joint_map"], unit=entry["unit"])
    finally:
        os.chdir(cwd)
    assert m.num_frames == 994 and m.source["skeleton"] == "user"
