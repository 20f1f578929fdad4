"""The scene as the robot needs it: objects mapped into the robot-scaled world, and its MJCF fragment.

The kinematic retargeter scales the human about the world origin (root translation times ``root_scale``,
limbs by per-segment ratios). Terrain (static objects) is scaled the same way, about the origin, geometry
included: a 0.95 m box climbed by a 1.7 m subject becomes a 0.69 m box for a robot scaled by 0.73.
Moving objects keep their size (the robot carries the real box); their horizontal path scales with the root
and their height above the starting height scales too, so an object resting on the floor stays on it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.io import atomic_path
from pipeline.motion.scene import Scene, SceneObject


def robot_scene(scene: Scene, scale: float, *, scale_moving: bool = False) -> Scene:
    """The human scene mapped by the human-to-robot ``scale`` (see the module docstring)."""
    objs = []
    for o in scene.objects:
        if o.static or scale_moving:
            objs.append(replace(o, vertices=o.vertices * scale, pos_w=o.pos_w * scale))
        else:
            pos = o.pos_w.copy()
            pos[:, :2] *= scale
            pos[:, 2] = o.pos_w[0, 2] + scale * (o.pos_w[:, 2] - o.pos_w[0, 2])
            objs.append(replace(o, pos_w=pos))
    return scene.replace(objects=tuple(objs), source={**scene.source, "robot_scale": round(float(scale), 6)})


MAX_TERRAIN_SHIFT = 0.1  # m: a larger fitted shift means labels and geometry disagree; clamp it


def fit_terrain_heights(
    scene: Scene,
    sole_z: np.ndarray,
    sole_xy: np.ndarray,
    parts: tuple[str, ...] = ("left_ankle", "right_ankle"),
) -> tuple[Scene, dict[str, float]]:
    """Shift each terrain piece vertically so the robot's feet stand on it where the human's did.

    The robot's foot targets come from per-segment scaling (legs by their own ratios, the root by one scale),
    so on a raised surface they do not land exactly on the uniformly scaled terrain. For each static object
    with foot contacts, the shift is the median over those frames of (target sole height - the object's top
    height straight under the foot). A piece under every foot position is the ground (its top is the floor,
    :func:`pipeline.retarget.interaction.floor_from_terrain`) and stays. sole_z: (T, 2) target sole heights of
    the left/right foot; sole_xy: (T, 2, 2). Returns the scene and the shifts (m) by object name.
    """
    from pipeline.retarget.interaction_geometry import ConvexSet, world_signed_distance

    objs = list(scene.objects)
    shifts: dict[str, float] = {}
    feet_xy = sole_xy.reshape(-1, 2)
    for oi, o in enumerate(objs):
        if not o.static or np.isfinite(top_under(o, feet_xy)).all():
            continue  # moving, or the ground under every foot position (its top is the floor)
        cols = [c for c, (b, k) in enumerate(zip(scene.contact_bodies, scene.contact_objects, strict=True))
                if k == oi and b in parts]  # fmt: skip
        gaps = []
        cs = ConvexSet.from_mesh(o.vertices)
        for c in cols:
            f = parts.index(scene.contact_bodies[c])
            frames = np.flatnonzero(scene.contacts[:, c])
            if not len(frames):
                continue
            # The top straight below the foot (a ramp's top is not where the surface is closest to a point far
            # above it); off the footprint, the height of the surface point closest to the sole.
            top = top_under(o, sole_xy[frames, f])
            off = np.isnan(top)
            if off.any():
                probe = np.concatenate([sole_xy[frames[off], f], sole_z[frames[off], f][:, None]], axis=1)
                top[off] = world_signed_distance(cs, o.pos_w[0], o.quat_w[0], probe)[2][:, 2]
            gaps.append(sole_z[frames, f] - top)
        if gaps:
            dz = float(np.clip(np.median(np.concatenate(gaps)), -MAX_TERRAIN_SHIFT, MAX_TERRAIN_SHIFT))
            shifts[o.name] = round(dz, 4)
            objs[oi] = replace(o, pos_w=o.pos_w + np.array([0.0, 0.0, dz]))
    return scene.replace(objects=tuple(objs), source={**scene.source, "terrain_shift_m": shifts}), shifts


def top_under(obj: SceneObject, xy: np.ndarray, frame: int = 0) -> np.ndarray:
    """(N,) height of the top of ``obj`` (its convex hull at ``frame``) above each horizontal point ``xy``
    (N, 2); NaN where the vertical line through the point misses the object (outside its footprint)."""
    from pipeline.geometry import quat_rotate
    from pipeline.retarget.interaction_geometry import ConvexSet

    cs = ConvexSet.from_mesh(obj.vertices)
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    quat = np.broadcast_to(obj.quat_w[frame], (len(xy), 4))
    conj = quat * np.array([1.0, -1.0, -1.0, -1.0])
    # The vertical line p0 + s e_z in the object frame; facet k bounds s by n_k . (p0 + s d) <= offset_k.
    p0 = quat_rotate(conj, np.concatenate([xy, np.zeros((len(xy), 1))], axis=1) - obj.pos_w[frame])
    d = quat_rotate(conj[:1], np.array([[0.0, 0.0, 1.0]]))[0]
    nd = cs.normals @ d  # (F,)
    room = cs.offsets[None, :] - p0 @ cs.normals.T  # (N, F)
    up, down, side = nd > 1e-9, nd < -1e-9, np.abs(nd) <= 1e-9
    s_hi = (room[:, up] / nd[up]).min(axis=1) if up.any() else np.full(len(xy), np.inf)
    s_lo = (room[:, down] / nd[down]).max(axis=1) if down.any() else np.full(len(xy), -np.inf)
    hit = (s_lo <= s_hi) & np.isfinite(s_hi) & (room[:, side] >= -1e-12).all(axis=1)
    return np.where(hit, s_hi, np.nan)


def support_heights(scene: Scene, xy: np.ndarray) -> np.ndarray:
    """Height of the highest terrain top (static objects) under horizontal points ``xy`` (..., 2); 0 (the
    floor) where no terrain is under a point or the terrain top is below the floor."""
    xy = np.asarray(xy, np.float64)
    out = np.zeros(xy.shape[:-1])
    flat = out.reshape(-1)
    for o in scene.objects:
        if o.static:
            top = top_under(o, xy.reshape(-1, 2))
            flat[:] = np.fmax(flat, top)
    return out


def _fmt(a: np.ndarray) -> str:
    return " ".join(f"{x:.6g}" for x in np.asarray(a).reshape(-1))


def scene_mjcf(scene: Scene, model: str = "scene") -> str:
    """An MJCF model holding the scene's meshes (inline vertices) and bodies, to ``<include>`` at the top level
    of a robot model or to attach with ``MjSpec``. Static objects are fixed bodies at their pose; moving
    objects are mocap bodies placed at frame 0 (the trajectory is in the scene npz)."""
    assets, bodies = [], []
    for o in scene.objects:
        assets.append(f'    <mesh name="{o.name}_mesh" vertex="{_fmt(o.vertices)}" face="{_fmt(o.faces)}"/>')
        mocap = "" if o.static else ' mocap="true"'
        bodies.append(
            f'    <body name="{o.name}" pos="{_fmt(o.pos_w[0])}" quat="{_fmt(o.quat_w[0])}"{mocap}>\n'
            f'      <geom name="{o.name}_geom" type="mesh" mesh="{o.name}_mesh" rgba="0.6 0.6 0.7 0.6" '
            f'contype="1" conaffinity="1"/>\n    </body>'
        )
    return (
        f'<mujoco model="{model}">\n  <asset>\n' + "\n".join(assets) + "\n  </asset>\n  <worldbody>\n"
        + "\n".join(bodies) + "\n  </worldbody>\n</mujoco>\n"
    )  # fmt: skip


def write_scene_mjcf(scene: Scene, path: str | Path) -> None:
    with atomic_path(path, ".xml") as tmp:
        tmp.write_text(scene_mjcf(scene, Path(path).name.split(".")[0]))


def add_scene(spec, scene: Scene) -> list[str]:  # spec: mujoco.MjSpec
    """Add the scene's meshes and bodies to a MuJoCo ``spec`` (as :func:`scene_mjcf`); returns the geom names."""
    import mujoco

    names = []
    for o in scene.objects:
        mesh = spec.add_mesh()
        mesh.name = f"{o.name}_mesh"
        mesh.uservert = o.vertices.astype(np.float32).reshape(-1).tolist()
        mesh.userface = o.faces.astype(np.int32).reshape(-1).tolist()
        body = spec.worldbody.add_body()
        body.name = o.name
        body.pos = o.pos_w[0]
        body.quat = o.quat_w[0]
        body.mocap = not o.static
        geom = body.add_geom()
        geom.name = f"{o.name}_geom"
        geom.type = mujoco.mjtGeom.mjGEOM_MESH
        geom.meshname = mesh.name
        names.append(geom.name)
    return names
