"""Signed distances to scene objects, and surface samples, for interaction-aware retargeting.

Each object is treated as its convex hull (as MuJoCo's collision detection treats a mesh geom). For a point
inside, the signed distance is the largest facet-plane distance (exact for a convex set, negative); outside it
is the exact distance to the nearest hull triangle. The gradient is the facet normal inside and the unit
vector from the closest surface point outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.geometry import quat_rotate


@dataclass(frozen=True)
class ConvexSet:
    """Convex hull of a mesh in its object frame.

    normals: (F, 3) outward unit facet normals; offsets: (F,) with n . x <= offset inside;
    tri: (F, 3, 3) the hull triangles; center: (3,); radius: bounding-sphere radius about ``center``.
    """

    normals: np.ndarray
    offsets: np.ndarray
    tri: np.ndarray
    center: np.ndarray
    radius: float

    @classmethod
    def from_mesh(cls, vertices: np.ndarray, faces: np.ndarray | None = None) -> ConvexSet:
        from scipy.spatial import ConvexHull

        hull = ConvexHull(np.asarray(vertices, np.float64))
        eq = hull.equations
        center = hull.points[hull.vertices].mean(axis=0)
        return cls(
            normals=eq[:, :3].copy(),
            offsets=-eq[:, 3].copy(),
            tri=hull.points[hull.simplices],
            center=center,
            radius=float(np.linalg.norm(hull.points[hull.vertices] - center, axis=1).max()),
        )

    def signed_distance(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d (P,), gradient (P, 3), closest surface point (P, 3)) of points ``p`` (P, 3), object frame."""
        p = np.asarray(p, np.float64).reshape(-1, 3)
        plane = p @ self.normals.T - self.offsets  # (P, F)
        k = plane.argmax(axis=1)
        d = plane[np.arange(len(p)), k]
        grad = self.normals[k].copy()
        closest = p - d[:, None] * grad
        out = np.flatnonzero(d > 0)
        if len(out):
            c = closest_on_triangles(p[out], self.tri)
            diff = p[out] - c
            dist = np.linalg.norm(diff, axis=1)
            d[out] = dist
            grad[out] = diff / np.maximum(dist, 1e-12)[:, None]
            closest[out] = c
        return d, grad, closest


def closest_on_triangles(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(P, 3) closest point to each of ``p`` (P, 3) over all triangles ``tri`` (F, 3, 3) (Ericson 5.1.5)."""
    a, b, c = (tri[None, :, i, :] for i in range(3))
    x = p[:, None, :]
    ab, ac, ap = b - a, c - a, x - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp, cp = x - b, x - c
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = 1e-18
    # Interior (barycentric) by default, then overwrite the edge / vertex regions.
    den = np.where(np.abs(va + vb + vc) > eps, va + vb + vc, eps)
    v, w = vb / den, vc / den
    res = a + v[..., None] * ab + w[..., None] * ac
    # Edge regions.
    t_ab = d1 / np.where(np.abs(d1 - d3) > eps, d1 - d3, eps)
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    res = np.where(m[..., None], a + t_ab[..., None] * ab, res)
    t_ac = d2 / np.where(np.abs(d2 - d6) > eps, d2 - d6, eps)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    res = np.where(m[..., None], a + t_ac[..., None] * ac, res)
    t_bc = (d4 - d3) / np.where(np.abs((d4 - d3) + (d5 - d6)) > eps, (d4 - d3) + (d5 - d6), eps)
    m = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    res = np.where(m[..., None], b + t_bc[..., None] * (c - b), res)
    # Vertex regions.
    res = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, res)
    res = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, res)
    res = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, res)
    dist = ((res - x) ** 2).sum(-1)
    best = dist.argmin(axis=1)
    return res[np.arange(len(p)), best]


def world_signed_distance(
    cs: ConvexSet, pos_w: np.ndarray, quat_w: np.ndarray, p_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`ConvexSet.signed_distance` for world points, object at pose (pos_w (3,), quat_w (4,) wxyz)."""
    q = np.broadcast_to(quat_w, (len(p_w), 4))
    qc = q * np.array([1.0, -1.0, -1.0, -1.0])
    local = quat_rotate(qc, p_w - pos_w)
    d, g, c = cs.signed_distance(local)
    return d, quat_rotate(q, g), quat_rotate(q, c) + pos_w


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points on the convex hull surface of a mesh, area-weighted, deterministic for ``seed``."""
    cs = ConvexSet.from_mesh(vertices, faces)
    tri = cs.tri
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(tri), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
