"""File-level entry for clips with a scene, and the per-clip method choice of the DVC retarget stage.

:func:`retarget_auto` has the signature of :func:`pipeline.retarget.run.retarget_file`: a clip with a scene
is retargeted interaction-aware, any other clip kinematically. Outputs of a scene clip, written together or
not at all: ``OUT.npz`` (RobotMotion), ``OUT.quality.json`` (kinematic + scene metrics), ``OUT.scene.npz``
(the robot's Scene: objects mapped to the robot, their trajectories) and ``OUT.scene.xml`` (its MJCF).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.io import atomic_path, sha256_file, write_json
from pipeline.motion.human import HumanMotion
from pipeline.motion.scene import Scene, scene_path_for


def scene_xml_path(output: str | Path) -> Path:
    """OUT.npz -> OUT.scene.xml."""
    out = Path(output)
    return out.with_name(out.name.removesuffix(".npz") + ".scene.xml")


def find_scene(clip: str | Path, human: HumanMotion) -> Scene | None:
    """The scene of ``clip``: ``<clip>.scene.npz`` beside a HumanMotion npz, else the one its reader knows
    (holosoma demo data, located from the HumanMotion's provenance), else None."""
    clip = Path(clip)
    beside = scene_path_for(clip)
    if clip.suffix == ".npz" and beside.is_file():
        scene = Scene.load(beside)
        from pipeline.motion.holosoma import resample_scene

        return resample_scene(scene, human.fps, human.num_frames)
    if str(human.source.get("format", "")).startswith("holosoma"):
        from pipeline.motion.holosoma import package_root, read_scene

        if clip.suffix in (".holosoma", ".pt"):
            return read_scene(clip, human)
        data = str(human.source.get("data", ""))
        src = package_root().parent / data
        if data and src.exists():
            if src.suffix != ".pt":
                src = src.parent  # a climbing clip is its folder
            return read_scene(src, human)
    return None


def retarget_auto(
    clip: str | Path,
    output: str | Path,
    *,
    robot: str = "g1",
    fmt: str | None = None,
    body_model: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    interaction: Mapping[str, Any] | None = None,
    progress: bool = True,
    scene_expected: bool | None = None,
) -> dict[str, Any]:
    """Retarget ``clip`` to ``output`` with the method its content calls for; returns the quality dict.

    params: the kinematic retargeter's parameters (params.yaml ``retarget``); interaction: the interaction
    method's own parameters (params.yaml ``retarget_interaction``, :class:`InteractionConfig` fields).
    scene_expected: True / False makes a clip without / with a scene an InputError (the DVC stages declare the
    scene outputs only for ``scene_clips``); None takes either.
    """
    from pipeline.errors import InputError
    from pipeline.motion import read_clip
    from pipeline.retarget.run import retarget_file

    human = read_clip(clip, fmt=fmt, body_model=body_model)
    scene = find_scene(clip, human)
    if scene_expected is not None and (scene is not None) != scene_expected:
        what = (
            "has a scene (objects, terrain): list it under params.yaml scene_clips, whose stages version the "
            "robot's scene with the motion"
            if scene is not None
            else "has no scene: list it under params.yaml clips"
        )
        raise InputError(clip, what)
    if scene is None:
        return retarget_file(clip, output, robot=robot, fmt=fmt, body_model=body_model, params=params,
                             progress=progress)  # fmt: skip
    if not human.source.get("sha256"):
        human = human.replace(source={**human.source, "sha256": sha256_file(clip)})
    return retarget_scene(human, scene, output, robot=robot, params={**(params or {}), **(interaction or {})},
                          progress=progress)  # fmt: skip


def retarget_scene(
    human: HumanMotion,
    scene: Scene,
    output: str | Path,
    *,
    robot: str = "g1",
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Interaction-retarget ``human`` in ``scene``; write the four outputs (module docstring)."""
    from pipeline.retarget.interaction import InteractionConfig, retarget_interaction
    from pipeline.retarget.interaction_scene import scene_mjcf
    from pipeline.retarget.run import _progress, quality_path
    from pipeline.robot.spec import load_robot

    cfg = InteractionConfig.from_dict(params)
    load_robot(robot)
    bar = _progress(str(human.source.get("file", "clip"))) if progress else None
    try:
        motion, rscene, qual = retarget_interaction(
            human, scene, robot, cfg, progress=bar.update if bar else None
        )
    finally:
        if bar:
            bar.close()
    out = Path(output)
    qual = {**qual, "method": "interaction"}
    with (
        atomic_path(out, ".npz") as t_npz,
        atomic_path(quality_path(out), ".json") as t_json,
        atomic_path(scene_path_for(out), ".npz") as t_scene,
        atomic_path(scene_xml_path(out), ".xml") as t_xml,
    ):
        motion.save(t_npz)
        write_json(t_json, qual)
        rscene.save(t_scene)
        t_xml.write_text(scene_mjcf(rscene, out.name.removesuffix(".npz")))
    return qual
