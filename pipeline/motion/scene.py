"""Scene: the objects and terrain a human motion interacts with (DESIGN.md, data contracts).

A Scene lives beside a HumanMotion (``data/human/<clip>.scene.npz``) and shares its frames, its world frame
(z up, metres, floor at z = 0) and its frame rate. Every object is a triangle mesh in its own frame (a box is
a mesh of 8 vertices) with a pose trajectory; terrain is an object with ``static=True``. Contact labels say,
per frame, whether a body part (a canonical keypoint name) touches an object.

Geometry queries (signed distances, closest points) are in :mod:`pipeline.retarget.interaction_geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.geometry import quat_mul, quat_rotate
from pipeline.io import json_field, load_npz, save_npz

FORMAT = "mimic.Scene"
VERSION = 1


@dataclass(frozen=True)
class SceneObject:
    """One rigid object or terrain piece.

    Attributes:
        name: unique name (also the MJCF body name).
        vertices: (V, 3) mesh vertices in the object frame, metres.
        faces: (F, 3) triangle vertex indices.
        pos_w: (T, 3) object frame position in the world.
        quat_w: (T, 4) object frame rotation (wxyz).
        static: True for terrain (the pose never changes).
        geometry: provenance of the geometry, e.g. ``"mesh:models/largebox/largebox.obj"`` or ``"box"``.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    pos_w: np.ndarray
    quat_w: np.ndarray
    static: bool = False
    geometry: str = "mesh"

    def vertices_w(self, frame: int) -> np.ndarray:
        """(V, 3) vertices in the world at ``frame``."""
        q = np.broadcast_to(self.quat_w[frame], (*self.vertices.shape[:-1], 4))
        return quat_rotate(q, self.vertices) + self.pos_w[frame]


@dataclass(frozen=True)
class Scene:
    """Objects and terrain of one clip, with contact labels.

    Attributes:
        fps: frames per second (that of the HumanMotion).
        objects: the objects.
        contact_bodies: (K,) canonical keypoint name of each contact column.
        contact_objects: (K,) object index each contact column refers to.
        contacts: (T, K) bool, the body part touches that object.
        source: provenance (format, file, sha256, licence, notes).
    """

    fps: float
    objects: tuple[SceneObject, ...]
    contact_bodies: tuple[str, ...] = ()
    contact_objects: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    contacts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.objects[0].pos_w.shape[0]) if self.objects else int(self.contacts.shape[0])

    def replace(self, **changes: Any) -> Scene:
        return replace(self, **changes)

    def object_index(self, name: str) -> int:
        return [o.name for o in self.objects].index(name)

    def transformed(self, quat: np.ndarray, trans: np.ndarray, scale: float = 1.0) -> Scene:
        """The scene moved by x -> scale * R(quat) x + trans (the move applied to the human); geometry scaled."""
        quat = np.asarray(quat, np.float64)
        objs = []
        for o in self.objects:
            q = np.broadcast_to(quat, o.quat_w.shape)
            objs.append(
                replace(
                    o,
                    vertices=o.vertices * scale,
                    pos_w=scale * quat_rotate(q, o.pos_w) + trans,
                    quat_w=_canonical(quat_mul(q, o.quat_w)),
                )
            )
        return replace(self, objects=tuple(objs))

    def sliced(self, start: int, stop: int, step: int = 1) -> Scene:
        """Frames ``start:stop:step`` (fps divided by ``step``)."""
        sl = slice(start, stop, step)
        objs = tuple(replace(o, pos_w=o.pos_w[sl], quat_w=o.quat_w[sl]) for o in self.objects)
        contacts = self.contacts[sl] if self.contacts.size else np.zeros((len(objs[0].pos_w), 0), bool)
        return replace(self, objects=objs, contacts=contacts, fps=self.fps / step)

    def validate(self, origin: str | Path | None = None) -> Scene:
        where = origin if origin is not None else self.source.get("file", "<scene>")
        if not self.objects:
            raise InputError(where, "a scene needs at least one object")
        t = self.objects[0].pos_w.shape[0]
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise InputError(where, f"object names must be unique, got {names}")
        for o in self.objects:
            if o.vertices.ndim != 2 or o.vertices.shape[1] != 3 or len(o.vertices) < 4:
                raise InputError(
                    where, f"object {o.name}: vertices must be (V>=4, 3), got {o.vertices.shape}"
                )
            if (
                o.faces.ndim != 2
                or o.faces.shape[1] != 3
                or o.faces.min() < 0
                or o.faces.max() >= len(o.vertices)
            ):
                raise InputError(where, f"object {o.name}: faces must be (F, 3) indices into the vertices")
            if o.pos_w.shape != (t, 3) or o.quat_w.shape != (t, 4):
                raise InputError(where, f"object {o.name}: pose must be ({t}, 3) + ({t}, 4)")
            if not (
                np.isfinite(o.pos_w).all() and np.isfinite(o.quat_w).all() and np.isfinite(o.vertices).all()
            ):
                raise InputError(where, f"object {o.name}: NaN or infinite values")
        k = len(self.contact_bodies)
        if self.contacts.shape != (t, k) or self.contact_objects.shape != (k,):
            raise InputError(where, f"contacts must be ({t}, {k}) with {k} object indices")
        if k and (self.contact_objects.min() < 0 or self.contact_objects.max() >= len(self.objects)):
            raise InputError(where, "contact_objects index an object that does not exist")
        if not (self.fps > 0 and np.isfinite(self.fps)):
            raise InputError(where, f"fps must be positive, got {self.fps}")
        return self

    def save(self, path: str | Path) -> None:
        self.validate()
        arrays: dict[str, Any] = {
            "fps": np.float64(self.fps),
            "object_names": np.array([o.name for o in self.objects]),
            "object_static": np.array([o.static for o in self.objects]),
            "object_geometry": np.array([o.geometry for o in self.objects]),
            "contact_bodies": np.array(self.contact_bodies, dtype=str),
            "contact_objects": self.contact_objects.astype(np.int32),
            "contacts": self.contacts.astype(bool),
            "source": self.source,
        }
        for i, o in enumerate(self.objects):
            arrays[f"object{i}_vertices"] = o.vertices.astype(np.float64)
            arrays[f"object{i}_faces"] = o.faces.astype(np.int32)
            arrays[f"object{i}_pos_w"] = o.pos_w.astype(np.float64)
            arrays[f"object{i}_quat_w"] = o.quat_w.astype(np.float64)
        save_npz(path, FORMAT, VERSION, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Scene:
        d = load_npz(path, FORMAT, VERSION)
        try:
            objs = tuple(
                SceneObject(
                    name=str(n),
                    vertices=d[f"object{i}_vertices"],
                    faces=d[f"object{i}_faces"].astype(np.int64),
                    pos_w=d[f"object{i}_pos_w"],
                    quat_w=d[f"object{i}_quat_w"],
                    static=bool(d["object_static"][i]),
                    geometry=str(d["object_geometry"][i]),
                )
                for i, n in enumerate(d["object_names"])
            )
            scene = cls(
                fps=float(d["fps"]),
                objects=objs,
                contact_bodies=tuple(str(n) for n in d["contact_bodies"]),
                contact_objects=d["contact_objects"].astype(np.int64),
                contacts=d["contacts"].astype(bool),
                source=json_field(d, "source"),
            )
        except KeyError as e:
            raise InputError(path, f"scene file lacks the field {e}") from None
        return scene.validate(path)


def scene_path_for(human_path: str | Path) -> Path:
    """``data/human/<clip>.npz`` -> ``data/human/<clip>.scene.npz``."""
    p = Path(human_path)
    return p.with_name(p.name.removesuffix(".npz") + ".scene.npz")


def _canonical(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)
