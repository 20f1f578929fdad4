"""File-level entry point: ``mimic retarget CLIP --robot g1 -o OUT.npz`` and the DVC retarget stage."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.io import atomic_path, sha256_file, write_json
from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.core import retarget

__all__ = ["quality_path", "retarget", "retarget_file"]


def quality_path(output: str | Path) -> Path:
    """OUT.npz -> OUT.quality.json."""
    out = Path(output)
    return out.with_name(out.name.removesuffix(".npz") + ".quality.json")


def retarget_file(
    clip: str | Path,
    output: str | Path,
    *,
    robot: str = "g1",
    fmt: str | None = None,
    body_model: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Read ``clip`` (any supported format), retarget it, write ``output`` and its quality JSON.

    Both files appear together or not at all: they are written to temporary files and renamed into place only
    once both are complete; an existing output is never left half-overwritten. Returns the quality dict.
    """
    from pipeline.motion import read_clip
    from pipeline.robot.spec import load_robot

    cfg = RetargetConfig.from_dict(params)
    load_robot(robot)  # an unknown robot fails before any work
    human = read_clip(clip, fmt=fmt, body_model=body_model)
    # The RobotMotion records the hash of the file it was made from (the clip, or the extracted HumanMotion).
    human = human.replace(source={**human.source, "input_sha256": sha256_file(clip)})
    bar = _progress(Path(clip).name) if progress else None
    try:
        motion, qual = retarget(human, robot, cfg, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    out = Path(output)
    with atomic_path(out, ".npz") as tmp_npz, atomic_path(quality_path(out), ".json") as tmp_json:
        motion.save(tmp_npz)
        write_json(tmp_json, qual)
    return qual


class _progress:
    """A tqdm bar on stderr, updated with (done, total)."""

    def __init__(self, name: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=f"retarget {name}", unit="frame", leave=False)

    def update(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        if done == total or done % 50 == 0:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
