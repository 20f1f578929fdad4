"""Triangle meshes of a robot's bodies, taken from the compiled MuJoCo model, for drawing outside MuJoCo."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from pipeline.geometry import quat_rotate

VISUAL_GROUPS = (0, 1, 2)  # MuJoCo geom groups drawn by default; collision geoms live in group 3 here


@dataclass(frozen=True)
class BodyMesh:
    """All visual geoms of one body merged into one mesh in the body frame.

    Attributes:
        body: body name.   body_index: index into RobotMotion.body_names (MuJoCo body id - 1).
        vertices: (V, 3) float32 metres, body frame.   faces: (F, 3) uint32.
        rgb: (3,) colour in [0, 1] (the first geom's material or rgba).
    """

    body: str
    body_index: int
    vertices: np.ndarray
    faces: np.ndarray
    rgb: np.ndarray


def _geom_rgb(model: mujoco.MjModel, g: int) -> np.ndarray:
    mat = int(model.geom_matid[g])
    rgba = model.mat_rgba[mat] if mat >= 0 else model.geom_rgba[g]
    return np.asarray(rgba[:3], dtype=np.float64)


def _primitive(model: mujoco.MjModel, g: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(vertices, faces) of a primitive geom in the geom frame, via trimesh; None for unsupported types."""
    import trimesh

    size = model.geom_size[g]
    t = int(model.geom_type[g])
    if t == mujoco.mjtGeom.mjGEOM_SPHERE:
        m = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
    elif t == mujoco.mjtGeom.mjGEOM_CAPSULE:
        m = trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[12, 12])
    elif t == mujoco.mjtGeom.mjGEOM_CYLINDER:
        m = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=16)
    elif t == mujoco.mjtGeom.mjGEOM_BOX:
        m = trimesh.creation.box(extents=2 * size[:3])
    elif t == mujoco.mjtGeom.mjGEOM_ELLIPSOID:
        m = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        m.apply_scale(size[:3])
    else:
        return None
    return np.asarray(m.vertices), np.asarray(m.faces)


def body_meshes(
    model: mujoco.MjModel, *, groups: tuple[int, ...] = VISUAL_GROUPS, cell: float | None = None
) -> list[BodyMesh]:
    """One :class:`BodyMesh` per body (world excluded) that has geoms in ``groups``.

    Mesh geoms come from ``model.mesh_vert`` / ``model.mesh_face`` placed by ``geom_pos`` / ``geom_quat``
    (MuJoCo recentres meshes at compile time and compensates in the geom pose); primitives are tessellated.
    With ``cell`` (metres), each body's mesh is simplified by :func:`simplify`.
    """
    out: list[BodyMesh] = []
    for b in range(1, model.nbody):
        verts: list[np.ndarray] = []
        faces: list[np.ndarray] = []
        rgb: np.ndarray | None = None
        offset = 0
        for g in np.flatnonzero(model.geom_bodyid == b):
            if int(model.geom_group[g]) not in groups:
                continue
            if int(model.geom_type[g]) == mujoco.mjtGeom.mjGEOM_MESH:
                mid = int(model.geom_dataid[g])
                v0, nv = int(model.mesh_vertadr[mid]), int(model.mesh_vertnum[mid])
                f0, nf = int(model.mesh_faceadr[mid]), int(model.mesh_facenum[mid])
                v = np.asarray(model.mesh_vert[v0 : v0 + nv], dtype=np.float64)
                f = np.asarray(model.mesh_face[f0 : f0 + nf], dtype=np.int64)
            else:
                prim = _primitive(model, int(g))
                if prim is None:
                    continue
                v, f = prim
            q = np.broadcast_to(model.geom_quat[g], (len(v), 4))
            verts.append(quat_rotate(q, v) + model.geom_pos[g])
            faces.append(f + offset)
            offset += len(v)
            if rgb is None:
                rgb = _geom_rgb(model, int(g))
        if verts:
            vertices, tris = np.concatenate(verts), np.concatenate(faces)
            if cell is not None:
                vertices, tris = simplify(vertices, tris, cell)
            out.append(
                BodyMesh(
                    body=model.body(b).name,
                    body_index=b - 1,
                    vertices=np.asarray(vertices, dtype=np.float32),
                    faces=np.asarray(tris, dtype=np.uint32),
                    rgb=rgb if rgb is not None else np.array([0.7, 0.7, 0.7]),
                )
            )
    return out


def simplify(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: merge the vertices inside each ``cell``-sized cube (metres) into their mean.

    Faces that collapse are dropped and duplicates removed; winding is kept. The G1's visual meshes go
    from ~390k to ~46k triangles at 8 mm, which a software-rendered browser draws at interactive rates.
    Returns (V', 3) float32 vertices and (F', 3) uint32 faces.
    """
    v = np.asarray(vertices, dtype=np.float64)
    key = np.floor(v / cell).astype(np.int64)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    merged = np.zeros((counts.size, 3))
    np.add.at(merged, inverse, v)
    merged /= counts[:, None]
    f = inverse[np.asarray(faces, dtype=np.int64)]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[keep]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    return merged.astype(np.float32), f[np.sort(first)].astype(np.uint32)
