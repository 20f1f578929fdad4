"""HumanMotion: the one format every reader produces (DESIGN.md, data contracts).

World frame z up, metres, floor at z = 0, the subject facing +x at frame 0. ``quat_w`` is each joint's world
rotation relative to the canonical rest pose: identity means the segment is oriented as in a subject standing
upright, facing +x, legs straight, arms hanging down, feet pointing forward. Readers re-express their
skeleton's own rest pose (T-pose, A-pose, ...) against it (:func:`pipeline.motion.process.rest_correction`).

``source`` keys written by the readers: ``format``, ``file``, ``sha256``, ``rest_pos`` ((J, 3) the source
skeleton's own rest-pose keypoints, metres, pelvis at the origin, facing +x), ``sole_offset_m`` (ankle and toe
joint heights above the sole of a planted foot), ``cyclic`` (DeepMimic ``Loop``), ``processed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.io import json_field, load_npz, require_finite, save_npz

FORMAT = "mimic.HumanMotion"
VERSION = 1

# The canonical keypoints every processed HumanMotion carries, in this order, with their parents.
CANONICAL_JOINTS: tuple[str, ...] = (
    "pelvis",
    "torso",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_toe",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_toe",
)
CANONICAL_PARENTS: tuple[int, ...] = (-1, 0, 1, 1, 3, 4, 1, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15)
CONTACT_NAMES: tuple[str, ...] = ("left_foot", "right_foot")


@dataclass(frozen=True)
class HumanMotion:
    """A human motion clip.

    Attributes:
        fps: frames per second.
        joint_names: (J,) joint names.
        parents: (J,) parent index per joint, -1 for the root.
        pos_w: (T, J, 3) joint positions in the world, metres.
        quat_w: (T, J, 4) joint world rotations (wxyz) relative to the rest pose.
        contacts: (T, C) bool foot contacts, columns named by ``contact_names``.
        contact_names: (C,) names of the contact columns.
        subject_height: standing height of the subject, metres.
        source: provenance: format, file name, sha256, licence (and any reader notes).
    """

    fps: float
    joint_names: tuple[str, ...]
    parents: np.ndarray
    pos_w: np.ndarray
    quat_w: np.ndarray
    contacts: np.ndarray
    contact_names: tuple[str, ...] = CONTACT_NAMES
    subject_height: float = 1.7
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.pos_w.shape[0])

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    def replace(self, **changes: Any) -> HumanMotion:
        return replace(self, **changes)

    def validate(self, origin: str | Path | None = None) -> HumanMotion:
        """Check shapes and values; raise :class:`InputError` naming ``origin`` and the problem."""
        where = origin if origin is not None else self.source.get("file", "<motion>")
        t, j = self.pos_w.shape[:2] if self.pos_w.ndim == 3 else (0, 0)
        if self.pos_w.ndim != 3 or self.pos_w.shape[2] != 3:
            raise InputError(where, f"pos_w must be (T, J, 3), got {self.pos_w.shape}")
        if t == 0:
            raise InputError(where, "the clip has zero frames")
        if j != len(self.joint_names) or self.parents.shape != (j,):
            raise InputError(where, f"{j} joints in pos_w but {len(self.joint_names)} names / parents")
        if self.quat_w.shape != (t, j, 4):
            raise InputError(where, f"quat_w must be {(t, j, 4)}, got {self.quat_w.shape}")
        if self.contacts.shape != (t, len(self.contact_names)):
            raise InputError(
                where, f"contacts must be {(t, len(self.contact_names))}, got {self.contacts.shape}"
            )
        for name, arr in (("pos_w", self.pos_w), ("quat_w", self.quat_w)):
            require_finite(where, name, arr)
        if not (self.fps > 0 and np.isfinite(self.fps)):
            raise InputError(where, f"fps must be positive, got {self.fps}")
        if not (0.3 < self.subject_height < 3.0):
            raise InputError(
                where, f"subject height {self.subject_height:.3f} m is not a human height: wrong units?"
            )
        return self

    def save(self, path: str | Path) -> None:
        self.validate()
        save_npz(
            path,
            FORMAT,
            VERSION,
            {
                "fps": np.float64(self.fps),
                "joint_names": np.array(self.joint_names),
                "parents": self.parents.astype(np.int32),
                "pos_w": self.pos_w.astype(np.float64),
                "quat_w": self.quat_w.astype(np.float64),
                "contacts": self.contacts.astype(bool),
                "contact_names": np.array(self.contact_names),
                "subject_height": np.float64(self.subject_height),
                "source": self.source,
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> HumanMotion:
        d = load_npz(path, FORMAT, VERSION)
        return cls(
            fps=float(d["fps"]),
            joint_names=tuple(str(n) for n in d["joint_names"]),
            parents=d["parents"].astype(np.int64),
            pos_w=d["pos_w"],
            quat_w=d["quat_w"],
            contacts=d["contacts"],
            contact_names=tuple(str(n) for n in d["contact_names"]),
            subject_height=float(d["subject_height"]),
            source=json_field(d, "source"),
        ).validate(path)
