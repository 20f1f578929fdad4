"""Scene metrics of a retargeted motion, measured with MuJoCo's own geometry (not the optimiser's).

The robot model (robot + floor) gets the robot's scene added (:func:`interaction_scene.add_scene`); per frame
the robot's collision geoms are compared with every object geom with ``mj_geomDistance`` (convex hulls, GJK /
EPA), a bounding-sphere test first.

- ``object_penetration_max_mm``: deepest overlap of any robot geom with any object or terrain geom.
- ``contact_err_mean_mm``: over the frames where the human touches an object (Scene labels), the distance
  from the robot's matching body part (its hand or foot collision geoms) to that object, mean.
- ``terrain_skate_mean_mm_s``: while a foot stands on terrain (labels), the mean horizontal speed of its sole
  centre (robot.yaml foot points), like the kinematic foot skate on the floor.
- ``contacts_kept_ratio``: the fraction of those (frame, contact) pairs where that distance is at most
  :data:`KEPT_DISTANCE`.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from pipeline.motion.scene import Scene
from pipeline.retarget.interaction import PART_CAPSULES
from pipeline.retarget.interaction_scene import add_scene
from pipeline.retarget.quality import quality
from pipeline.robot.model import build_spec
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot

KEPT_DISTANCE = 0.02  # m
SCENE_KEYS = (
    "terrain_skate_mean_mm_s",
    "object_penetration_max_mm",
    "contact_err_mean_mm",
    "contacts_kept_ratio",
    "contact_frames",
)
BARS = {
    "object_penetration_max_mm": 10.0,
    "contact_err_mean_mm": 25.0,
    "keypoint_err_mean_mm": 50.0,
    "floor_penetration_max_mm": 5.0,
    "foot_skate_mean_mm_s": 20.0,
    "terrain_skate_mean_mm_s": 20.0,
}


def scene_model(robot: str, scene: Scene) -> tuple[mujoco.MjModel, list[int]]:
    spec = build_spec(load_robot(robot), actuators=False)
    names = add_scene(spec, scene)
    model = spec.compile()
    return model, [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in names]


def scene_metrics(motion: RobotMotion, scene: Scene) -> dict[str, float | int]:
    """The :data:`SCENE_KEYS` of ``motion`` (robot world) against ``scene`` (the robot's scene, same frames)."""
    model, obj_geoms = scene_model(motion.robot, scene)
    data = mujoco.MjData(model)
    robot_geoms = [
        g
        for g in range(model.ngeom)
        if model.geom_bodyid[g] != 0
        and g not in obj_geoms
        and (model.geom_contype[g] or model.geom_conaffinity[g])
        and model.body_mocapid[model.geom_bodyid[g]] < 0
        and model.body(model.geom_bodyid[g]).name not in {o.name for o in scene.objects}
    ]
    gname = {g: model.geom(g).name for g in robot_geoms}
    part_geoms = {p: [g for g in robot_geoms if gname[g].startswith(pre)] for p, pre in PART_CAPSULES.items()}
    mocap = {
        i: model.body_mocapid[model.body(o.name).id] for i, o in enumerate(scene.objects) if not o.static
    }
    qpos = motion.qpos
    t = min(motion.num_frames, scene.num_frames)
    fromto = np.zeros(6)
    pen = 0.0
    errs: list[float] = []
    kept = 0
    labels = scene.contacts if scene.contacts.size else np.zeros((t, 0), bool)
    for i in range(t):
        data.qpos[:] = qpos[i]
        for oi, mid in mocap.items():
            data.mocap_pos[mid] = scene.objects[oi].pos_w[i]
            data.mocap_quat[mid] = scene.objects[oi].quat_w[i]
        mujoco.mj_kinematics(model, data)
        dist = np.full((len(obj_geoms), model.ngeom), np.inf)
        for oj, og in enumerate(obj_geoms):
            reach = model.geom_rbound[og] + model.geom_rbound[robot_geoms] + 0.05
            gap = np.linalg.norm(data.geom_xpos[robot_geoms] - data.geom_xpos[og], axis=1)
            for g in np.asarray(robot_geoms)[gap < reach]:
                dist[oj, g] = mujoco.mj_geomDistance(model, data, int(g), og, 0.1, fromto)
            pen = max(pen, float(-dist[oj].min()))
        for c in np.flatnonzero(labels[i]):
            part, oi = scene.contact_bodies[c], int(scene.contact_objects[c])
            gs = part_geoms.get(part, [])
            if not gs:
                continue
            d = float(np.min(dist[oi, gs]))
            d = 0.1 if not np.isfinite(d) else max(d, 0.0)  # mj_geomDistance caps at distmax
            errs.append(d)
            kept += d <= KEPT_DISTANCE
    # Feet on terrain: horizontal speed of the sole centre over consecutive frames standing on the same object.
    spec = load_robot(motion.robot)
    centre = 0.5 * (np.asarray(spec.foot_points["heel"]) + np.asarray(spec.foot_points["toe"]))
    speeds = []
    for col, part in enumerate(scene.contact_bodies):
        if part not in ("left_ankle", "right_ankle") or not scene.objects[scene.contact_objects[col]].static:
            continue
        foot = ("left_ankle", "right_ankle").index(part)
        b = motion.body_index(spec.feet[foot])
        sole = motion.body_pos_w[:t, b] + np.einsum("tij,j->ti", _mat(motion.body_quat_w[:t, b]), centre)
        both = labels[1:t, col] & labels[: t - 1, col]
        v = np.linalg.norm(np.diff(sole[:, :2], axis=0), axis=1) * motion.fps
        speeds.extend(v[both].tolist())
    return {
        "terrain_skate_mean_mm_s": round(float(np.mean(speeds)) * 1e3, 3) if speeds else 0.0,
        "object_penetration_max_mm": round(max(pen, 0.0) * 1e3, 3),
        "contact_err_mean_mm": round(float(np.mean(errs)) * 1e3, 3) if errs else 0.0,
        "contacts_kept_ratio": round(kept / len(errs), 4) if errs else 1.0,
        "contact_frames": len(errs),
    }


def _mat(quat: np.ndarray) -> np.ndarray:
    from pipeline.geometry import quat_to_matrix

    return quat_to_matrix(quat)


def interaction_quality(motion: RobotMotion, scene: Scene) -> dict[str, Any]:
    """Kinematic quality (:func:`pipeline.retarget.quality.quality`) plus the scene metrics."""
    return {**quality(motion), **scene_metrics(motion, scene)}


def passes(q: dict[str, Any]) -> dict[str, bool]:
    """Which bars of issue 7 (and the kinematic ones) a quality dict meets."""
    out = {k: bool(q[k] <= v) for k, v in BARS.items() if k in q}
    out["contacts_kept_ratio"] = bool(q.get("contacts_kept_ratio", 1.0) >= 0.95)
    out["joint_limit_violations"] = q.get("joint_limit_violations", 0) == 0
    out["self_collisions"] = q.get("self_collisions", 0) == 0
    return out
