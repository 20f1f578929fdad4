"""The clip set: default clips materialised from installed packages, and clips a user adds.

Default clips are DeepMimic motion files shipped in the ``pybullet`` wheel
(``pybullet_data/data/motions/humanoid3d_<name>.txt``). :func:`materialise_default_clips` copies them byte for
byte into a folder and writes ``sources.json`` beside them: package name and version, the file's path inside
the package, its sha256, the licence the package declares, and whether the clip loops. So a fresh clone
rebuilds them from the installed package with no DVC remote.

:func:`add_clip` validates a user's clip by reading it fully, then copies it into ``motions/raw/``, tracks it
with ``dvc add`` and registers it under ``clips:`` in ``params.yaml``. Nothing is touched when the clip fails
to read or the name is taken.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError, MimicError
from pipeline.io import atomic_path, sha256_file

DEEPMIMIC_DIR = ("data", "motions")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _package_root(package: str) -> Path:
    if package != "pybullet":
        raise InputError(
            "params.yaml", f"default_clips.package: only 'pybullet' ships default clips, not '{package}'"
        )
    import pybullet_data

    return Path(pybullet_data.getDataPath())


def package_licence(package: str) -> str:
    """The licence a distribution declares in its metadata (License field, else its licence classifiers)."""
    meta = importlib.metadata.metadata(package)
    lic = meta["License"] or meta["License-Expression"]
    if lic:
        return str(lic).strip()
    classifiers = [
        c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")
    ]
    return ", ".join(classifiers) or "unknown"


def available_default_clips(package: str = "pybullet") -> list[str]:
    folder = _package_root(package).joinpath(*DEEPMIMIC_DIR)
    return sorted(p.stem.removeprefix("humanoid3d_") for p in folder.glob("humanoid3d_*.txt"))


def materialise_default_clips(
    out_dir: str | Path, names: list[str], package: str = "pybullet"
) -> dict[str, Any]:
    """Copy the named default clips into ``out_dir/<name>.txt`` and write ``out_dir/sources.json``.

    Returns the provenance record. Each clip is read fully first (:func:`pipeline.motion.read_clip`).
    """
    from pipeline.motion import read_clip

    out_dir = Path(out_dir)
    data_root = _package_root(package)
    known = available_default_clips(package)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            "params.yaml", f"default_clips.names: {unknown} not in {package}; available: {known}"
        )
    version = importlib.metadata.version(package)
    licence = package_licence(package)
    clips: dict[str, Any] = {}
    for name in names:
        src = data_root.joinpath(*DEEPMIMIC_DIR, f"humanoid3d_{name}.txt")
        motion = read_clip(src, fmt="deepmimic")
        dest = out_dir / f"{name}.txt"
        _copy(src, dest)
        clips[name] = {
            "file": dest.name,
            "format": "deepmimic",
            "sha256": sha256_file(dest),
            "package": package,
            "package_version": version,
            "source": f"pybullet_data/{'/'.join(DEEPMIMIC_DIR)}/{src.name}",
            "licence": licence,
            "licence_note": (
                "the pybullet distribution declares this licence for its files (dist-info LICENSE.txt: zlib "
                "except 'Extras' and examples/ThirdPartyLibs); the motion data come from DeepMimic "
                "(Peng et al., SIGGRAPH 2018)"
            ),
            "cyclic": bool(motion.source["cyclic"]),
            "frames": motion.num_frames,
            "fps": motion.fps,
        }
    record = {"format": "mimic.DefaultClips", "format_version": 1, "clips": clips}
    with atomic_path(out_dir / "sources.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o644)
    return record


def _copy(src: Path, dest: Path) -> None:
    """Byte-for-byte copy, atomically, readable like a normal file (0644)."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        tmp.chmod(0o644)


def find_repo_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding a ``.dvc`` folder."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / ".dvc").is_dir():
            return d
    raise InputError(here, "not inside a DVC repository (no .dvc folder here or above): run from the project")


def _yaml_entry(name: str, entry: dict[str, Any]) -> str:
    inner = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return f"  {name}: {inner}\n"


def register_clip(params_path: Path, name: str, entry: dict[str, Any], section: str = "clips") -> None:
    """Add ``name: entry`` under the top-level ``section`` mapping (``clips:`` or ``scene_clips:``) of
    params.yaml with a minimal text edit.

    Comments and the order of everything else are kept; the result is checked by re-parsing it.
    """
    text = params_path.read_text() if params_path.exists() else ""
    before = yaml.safe_load(text) or {} if text else {}
    if not isinstance(before, dict):
        raise InputError(params_path, "params.yaml is not a mapping")
    clips = before.get(section) or {}
    if not isinstance(clips, dict):
        raise InputError(params_path, f"'{section}' in params.yaml is not a mapping")
    if name in clips:
        raise InputError(params_path, f"a clip named '{name}' is already registered")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, ln in enumerate(lines) if re.match(rf"^{section}\s*:", ln)), None)
    line = _yaml_entry(name, entry)
    if start is None:
        lines += ["\n" if lines else "", f"{section}:\n", line]
    elif re.match(rf"^{section}\s*:\s*(\{{\s*\}}|null|~)?\s*(#.*)?$", lines[start]) and not clips:
        lines[start] = f"{section}:\n"
        lines.insert(start + 1, line)
    else:
        end = start + 1
        last = start
        while end < len(lines) and (lines[end].startswith((" ", "\t", "#")) or not lines[end].strip()):
            if (
                lines[end].startswith((" ", "\t"))
                and lines[end].strip()
                and not lines[end].lstrip().startswith("#")
            ):
                last = end
            end += 1
        lines.insert(last + 1, line)
    new_text = "".join(lines)
    after = yaml.safe_load(new_text)
    expected = {**before, section: {**clips, name: entry}}
    if after != expected:
        raise MimicError(
            f"{params_path}: could not add clip '{name}' to '{section}:' without changing other entries"
        )
    mode = params_path.stat().st_mode & 0o777 if params_path.exists() else 0o644
    with atomic_path(params_path) as tmp:
        tmp.write_text(new_text)
        tmp.chmod(mode)


def _dvc(root: Path, *args: str) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise MimicError(f"dvc {' '.join(args)} failed: {msg[-1] if msg else proc.returncode}")


def add_clip(
    path: str | Path,
    name: str | None = None,
    fmt: str | None = None,
    *,
    root: str | Path | None = None,
    joint_map: str | None = None,
    unit: str | None = None,
    body_model: str | None = None,
    subject_height: float | None = None,
    video: dict[str, Any] | None = None,
) -> Path:
    """Validate ``path`` (read it fully), copy it to ``motions/raw/<name><suffix>``, ``dvc add`` it and
    register it in ``params.yaml`` under ``clips:`` (``scene_clips:`` for a clip with a scene: holosoma).
    Returns the copied file's path.

    Refused before anything is touched: a file that fails to read, a bad or taken name.
    """
    from pipeline.motion import detect_format, read_clip

    src = Path(path)
    if not src.is_file():
        raise InputError(src, "file not found")
    repo = find_repo_root(root)
    name = name or src.stem
    if not NAME_RE.match(name):
        raise InputError(src, f"clip name '{name}' must be letters, digits, '_' or '-' (pass --name)")
    fmt = fmt or detect_format(src)
    dest = repo / "motions" / "raw" / f"{name}{src.suffix.lower()}"
    params_path = repo / "params.yaml"
    current = (yaml.safe_load(params_path.read_text()) or {}) if params_path.exists() else {}
    registered = {**(current.get("clips") or {}), **(current.get("scene_clips") or {})}
    if name in registered:
        raise InputError(src, f"a clip named '{name}' already exists in params.yaml (pass --name)")
    if (
        dest.exists()
        or dest.with_name(dest.name + ".dvc").exists()
        or dest.with_name(f"{name}.joints.yaml").exists()
    ):
        raise InputError(src, f"{dest.relative_to(repo)} already exists (pass --name)")
    if fmt == "amass" and body_model is None:
        from pipeline.motion.amass import load_clip

        load_clip(src)  # structure only: the body model is needed to run it
    else:
        read_clip(
            src,
            fmt=fmt,
            joint_map=joint_map,
            unit=unit,
            body_model=body_model,
            subject_height=subject_height,
            video=video,
        )
    rel = dest.relative_to(repo).as_posix()
    dest.parent.mkdir(parents=True, exist_ok=True)
    created = [dest, dest.with_name(dest.name + ".dvc")]
    try:
        _copy(src, dest)
        _dvc(repo, "add", rel)
        entry: dict[str, Any] = {"path": rel, "format": fmt}
        if joint_map is not None:  # kept beside the clip (small YAML, committed to git) so the stage finds it
            map_dest = dest.with_name(f"{name}.joints.yaml")
            _copy(Path(joint_map), map_dest)
            created.append(map_dest)
            joint_map = map_dest.relative_to(repo).as_posix()
        for key, value in (
            ("joint_map", joint_map),
            ("unit", unit),
            ("body_model", body_model),
            ("subject_height", subject_height),
            ("video", video),
        ):
            if value is not None:
                entry[key] = value
        # a clip with a scene (objects, terrain) goes through the interaction-aware stages
        register_clip(params_path, name, entry, "scene_clips" if fmt == "holosoma" else "clips")
    except BaseException:
        for leftover in created:
            leftover.unlink(missing_ok=True)
        raise
    return dest
