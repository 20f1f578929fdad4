"""Interaction-aware retargeting vs the reference implementation (holosoma_retargeting 0.1.0), per demo clip.

Prints one JSON line per clip: our figures and the reference's, the same metrics computed by OUR quality code
(pipeline.retarget.quality + interaction_quality) on both outputs, time per frame and peak memory.

The reference runs only in its own venv (mujoco 3.3.7) and takes seconds per frame here, so its outputs are
produced by ``scripts/run_reference.sh`` and cached under cache/holosoma/ (gitignored); this script reads
them (``"reference": {"cached": true, ...}``) and reports the reference's wall time from that run. Climbing
clips may be compared on a window (``mocap_climb_seq_0@70+100``: 100 frames from output frame 70 at 30 fps),
on which both systems run from the same frames. Both systems retarget at 30 fps.

Reference outputs are evaluated in their own world (no facing turn) against their own robot scene: the box
pose they output (OMOMO) or the terrain boxes scaled by their factor 1.32 / 1.78 (climbing), with OUR contact
labels (same frames). Keypoint errors compare each system's robot keypoints (robot.yaml) with that system's
own scaled human keypoints (ours: per-segment scaling; theirs: uniform scaling of the joint positions).

usage: python benchmarks/interaction_retarget.py [CLIP ...] [--ours-only]
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "cache" / "holosoma"
CLIPS = (
    "sub3_largebox_003",
    "sub10_largebox_049",
    "mocap_climb_seq_0@70+100",
    "mocap_climb_seq_0",
    "mocap_climb_seq_1",
    "mocap_climb_seq_2",
    "mocap_climb_seq_3",
    "mocap_climb_seq_4",
)
REF_ROBOT_HEIGHT = 1.32  # the reference's G1 height and default mocap subject height (its config)
REF_HUMAN_HEIGHT = 1.78
LOWER_IS_BETTER = (
    "keypoint_err_mean_mm",
    "foot_skate_mean_mm_s",
    "terrain_skate_mean_mm_s",
    "floor_penetration_max_mm",
    "joint_limit_violations",
    "self_collisions",
    "object_penetration_max_mm",
    "contact_err_mean_mm",
    "jerk_mean",
    "ms_per_frame",
)


def _inputs(clip: str):  # type: ignore[no-untyped-def]
    from pipeline.motion import read_clip
    from pipeline.motion.holosoma import read_scene

    task, _, win = clip.partition("@")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"{task}.holosoma"
        sub = "OMOMO_new" if "largebox" in task else "climb"
        p.write_text(f"clip: {sub}/{task}\n")
        human = read_clip(p, fps=30.0)
        scene = read_scene(p, human)
    if win:
        start, count = (int(x) for x in win.split("+"))
        sl = slice(start, start + count)
        human = human.replace(pos_w=human.pos_w[sl], quat_w=human.quat_w[sl], contacts=human.contacts[sl])
        scene = scene.sliced(start, start + count)
    return task, win, human, scene


def ours(human, scene) -> tuple[dict, object, object]:  # type: ignore[no-untyped-def]
    from pipeline.retarget.interaction import InteractionConfig, retarget_interaction

    t0 = time.perf_counter()
    motion, rscene, q = retarget_interaction(human, scene, "g1", InteractionConfig())
    dt = time.perf_counter() - t0
    return {**q, "ms_per_frame": round(1e3 * dt / human.num_frames, 1)}, motion, rscene


def reference(clip: str, task: str, win: str, human, scene) -> dict | None:  # type: ignore[no-untyped-def]
    from pipeline.motion.holosoma import MOCAP_TO_CANONICAL, SMPLH_TO_CANONICAL, package_root, read_obj
    from pipeline.motion.scene import SceneObject
    from pipeline.retarget.interaction_quality import scene_metrics
    from pipeline.retarget.kinematics import robot_kinematics
    from pipeline.retarget.quality import quality
    from pipeline.robot.motion import RobotMotion

    name = task if not win else f"{task}_f{win.split('+')[0]}-{sum(int(x) for x in win.split('+'))}"
    npz, timing = CACHE / f"{name}_original.npz", CACHE / f"{name}.time.json"
    if not (npz.is_file() and timing.is_file()):
        return None
    d = np.load(npz, allow_pickle=False)
    qpos, hj = d["qpos"], d["human_joints"]
    t = min(len(qpos), human.num_frames)
    kin = robot_kinematics("g1")
    canon = SMPLH_TO_CANONICAL if "largebox" in task else MOCAP_TO_CANONICAL
    from pipeline.motion.human import CANONICAL_JOINTS

    order = [CANONICAL_JOINTS.index(n) for n in kin.keypoint_names]
    kp = hj[:t][:, list(canon)][:, order]
    motion = RobotMotion.from_qpos(
        "g1",
        qpos[:t, :36],
        30.0,
        contacts=human.contacts[:t],
        keypoint_names=kin.keypoint_names,
        keypoint_pos_w=kp,
    )
    if "largebox" in task:
        o = scene.objects[0]
        obj = SceneObject(o.name, o.vertices, o.faces, qpos[:t, 36:39], qpos[:t, 39:43], False, o.geometry)
        rscene = scene.replace(objects=(obj,))
    else:
        s = REF_ROBOT_HEIGHT / REF_HUMAN_HEIGHT
        folder = package_root() / "demo_data" / "climb" / task / "box_models"
        objs = []
        for o in scene.objects:
            v, f = read_obj(folder / f"{o.name}.obj")
            objs.append(
                SceneObject(o.name, v * s, f, np.zeros((t, 3)), np.tile([1.0, 0, 0, 0], (t, 1)), True)
            )
        rscene = scene.replace(objects=tuple(objs))
    rscene = rscene.replace(contacts=scene.contacts[:t]) if scene.contacts.size else rscene
    tm = json.loads(timing.read_text())
    return {
        **quality(motion),
        **scene_metrics(motion, rscene),
        "ms_per_frame": round(1e3 * tm["seconds"] / tm["frames"], 1),
        "cached": True,
    }


def main(argv: list[str]) -> None:
    only_ours = "--ours-only" in argv
    clips = [a for a in argv if not a.startswith("--")] or list(CLIPS)
    for clip in clips:
        task, win, human, scene = _inputs(clip)
        ref = None if only_ours else reference(clip, task, win, human, scene)
        mine, _, _ = ours(human, scene)
        line: dict = {"clip": clip, "frames": human.num_frames, "ours": mine, "reference": ref}
        if ref is not None:
            line["ours_at_least_as_good"] = {
                k: bool(mine[k] <= ref[k] + 1e-9) for k in LOWER_IS_BETTER if k in mine and k in ref
            }
            line["ours_at_least_as_good"]["contacts_kept_ratio"] = (
                mine["contacts_kept_ratio"] >= ref["contacts_kept_ratio"]
            )
        line["load_avg_1m"] = round(os.getloadavg()[0], 2)  # the machine is shared: timings depend on it
        line["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
