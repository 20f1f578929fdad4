"""extract stage: one clip (params.yaml `clips.<name>`) -> data/human/<name>.npz (HumanMotion).

usage: python stages/extract.py [--scene] NAME OUTPUT
--scene: the clip is `scene_clips.<name>` (a clip with objects or terrain, stage extract_scene).
"""

from __future__ import annotations

from pipeline.errors import InputError
from pipeline.motion import read_clip
from pipeline.motion.process import ContactConfig
from pipeline.stage import params, run

# video: a video clip's camera and gap options (pipeline.motion.video.VideoOptions: fx, fy, cx, cy...)
CLIP_KEYS = {"path", "format", "unit", "joint_map", "subject_height", "body_model", "video"}


def main(argv: list[str]) -> None:
    section = "scene_clips" if "--scene" in argv else "clips"
    name, output = [a for a in argv if a != "--scene"]
    clip = params(section, name)
    unknown = set(clip) - CLIP_KEYS
    if unknown:
        raise InputError(
            "params.yaml", f"{section}.{name}: unknown keys {sorted(unknown)} (known: {sorted(CLIP_KEYS)})"
        )
    settings = params("extract")
    contacts = ContactConfig.from_params(settings.get("contacts"))
    motion = read_clip(
        clip["path"],
        fmt=clip.get("format"),
        fps=float(settings["fps"]),
        unit=clip.get("unit"),
        joint_map=clip.get("joint_map"),
        subject_height=clip.get("subject_height"),
        body_model=clip.get("body_model"),
        video=clip.get("video"),
        contacts=contacts,
    )
    motion.save(output)
    print(f"{name}: {motion.num_frames} frames at {motion.fps:g} fps, subject {motion.subject_height:.2f} m")


if __name__ == "__main__":
    run(main)
