"""default_clips stage: materialise the default clips from an installed package, with provenance.

usage: python stages/default_clips.py OUT_DIR        (params.yaml `default_clips`: package, names)
"""

from __future__ import annotations

from pipeline.clips import materialise_default_clips
from pipeline.stage import params, run


def main(argv: list[str]) -> None:
    (out_dir,) = argv
    cfg = params("default_clips")
    record = materialise_default_clips(out_dir, list(cfg["names"]), package=str(cfg["package"]))
    for name, clip in record["clips"].items():
        print(f"{name}: {clip['source']} ({clip['frames']} frames, sha256 {clip['sha256'][:12]})")


if __name__ == "__main__":
    run(main)
