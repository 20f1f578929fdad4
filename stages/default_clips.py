"""default_clips stage: materialise the default clips (params.yaml `default_clips`) from the installed package.

usage: python stages/default_clips.py OUTPUT_DIR
"""

from __future__ import annotations

from pipeline.clips import materialise_default_clips
from pipeline.errors import InputError
from pipeline.stage import params, run

KEYS = {"package", "names"}


def main(argv: list[str]) -> None:
    (out_dir,) = argv
    cfg = params("default_clips")
    unknown = set(cfg) - KEYS
    if unknown:
        raise InputError(
            "params.yaml", f"default_clips: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})"
        )
    record = materialise_default_clips(out_dir, list(cfg["names"]), package=cfg.get("package", "pybullet"))
    for name, clip in record["clips"].items():
        print(
            f"{name}: {clip['frames']} frames at {clip['fps']:g} fps from {clip['package']} {clip['package_version']}"
        )


if __name__ == "__main__":
    run(main)
