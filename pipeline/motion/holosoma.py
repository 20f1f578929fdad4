"""Readers for the demo data of the ``holosoma_retargeting`` wheel (Apache-2.0): HumanMotion + Scene.

The data is read from the installed package at run time (``pip install --no-deps holosoma_retargeting``);
nothing is copied into the project. A clip is named by a small pointer file ``<clip>.holosoma`` (YAML
``{clip: OMOMO_new/sub3_largebox_003}`` or ``{clip: climb/mocap_climb_seq_0}``, relative to the package's
``demo_data``), or by an OMOMO ``.pt`` file directly.

What the files hold (checked by tests/test_holosoma_readers.py):

- ``demo_data/OMOMO_new/<sub>_largebox_<n>.pt``: a torch zip file holding one float32 tensor (T, 591) (it
  loads with ``torch.load(weights_only=True)`` and carries ``requires_grad``; read here without torch by a
  whitelisting unpickler, tested equal to torch's result), 30 fps,
  z up, metres. Columns 0:3 root position, 3:7 root quaternion (xyzw), 7:162 the body pose (axis-angle),
  162:318 the 52 joint positions in the order of ``SMPLH_JOINTS``, 318:321 box position, 321:325 box
  quaternion (xyzw), 325:330 zeros, 330 object-contact flag (0/1), 331:383 a per-joint contact label (+1 touches
  the box, -1 does not, 0 unknown; only the hands and fingers are ever +1), 383:591 the 52 joint world
  quaternions (xyzw). The box mesh is ``models/largebox/largebox.obj`` (13551 vertices, ~32 cm, nearly
  convex). Subject heights: ``demo_data/height_dict.pkl``, a pickle of ``{subject: numpy float32}`` read here
  with an unpickler that only admits numpy scalars.
- ``demo_data/climb/mocap_climb_seq_<k>/``: ``*_joint_positions_f<a>-<b>.npy`` float32 (T, 53, 3) world joint
  positions (names ``MOCAP_JOINTS``), z up, metres, 120 fps; terrain boxes ``box_models/box<i>.obj`` (8
  vertices each, already placed in the world, floor at z = 0). No contact labels: hand and foot contacts with
  the boxes are found here by proximity.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.errors import InputError
from pipeline.io import sha256_file
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, CONTACT_NAMES, HumanMotion
from pipeline.motion.scene import Scene, SceneObject

PACKAGE = "holosoma_retargeting"
LICENCE = "Apache-2.0 (holosoma_retargeting 0.1.0 demo data; OMOMO / mocap sources)"
OMOMO_FPS = 30.0
CLIMB_FPS = 120.0

_SIDES = ("L", "R")
_FINGERS = tuple(f"{f}{k}" for f in ("Index", "Middle", "Pinky", "Ring", "Thumb") for k in (1, 2, 3))
SMPLH_JOINTS: tuple[str, ...] = (
    "Pelvis", "L_Hip", "L_Knee", "L_Ankle", "L_Toe", "R_Hip", "R_Knee", "R_Ankle", "R_Toe",
    "Torso", "Spine", "Chest", "Neck", "Head",
    *(n for s in _SIDES for n in (f"{s}_Thorax", f"{s}_Shoulder", f"{s}_Elbow", f"{s}_Wrist",
                                  *(f"{s}_{f}" for f in _FINGERS))),
)  # fmt: skip
MOCAP_JOINTS: tuple[str, ...] = (
    "Hips", "Spine", "Spine1", "Neck", "Head",
    *(n for s in ("Left", "Right") for n in (f"{s}Shoulder", f"{s}Arm", f"{s}ForeArm", f"{s}Hand",
                                             *(f"{s}Hand{f}{k}" for f in ("Thumb", "Index", "Middle", "Ring",
                                                                         "Pinky") for k in (1, 2, 3)))),
    *(n for s in ("Left", "Right") for n in (f"{s}UpLeg", f"{s}Leg", f"{s}Foot", f"{s}ToeBase")),
    "LeftFootMod", "RightFootMod",
)  # fmt: skip


def _map(common: dict[str, str], sided: dict[str, str], left: str, right: str) -> tuple[int, ...]:
    names = dict(common)
    for k, v in sided.items():
        names[f"left_{k}"] = v.format(s=left)
        names[f"right_{k}"] = v.format(s=right)
    return tuple(names[c] for c in CANONICAL_JOINTS)  # type: ignore[misc]


SMPLH_TO_CANONICAL = tuple(
    SMPLH_JOINTS.index(n)
    for n in _map(
        {"pelvis": "Pelvis", "torso": "Chest", "head": "Head"},
        {k: "{s}_" + v for k, v in (("shoulder", "Shoulder"), ("elbow", "Elbow"), ("wrist", "Wrist"),
                                     ("hip", "Hip"), ("knee", "Knee"), ("ankle", "Ankle"), ("toe", "Toe"))},
        "L", "R",
    )
)  # fmt: skip
MOCAP_TO_CANONICAL = tuple(
    MOCAP_JOINTS.index(n)
    for n in _map(
        {"pelvis": "Hips", "torso": "Spine1", "head": "Head"},
        {k: "{s}" + v for k, v in (("shoulder", "Arm"), ("elbow", "ForeArm"), ("wrist", "Hand"),
                                    ("hip", "UpLeg"), ("knee", "Leg"), ("ankle", "Foot"), ("toe", "ToeBase"))},
        "Left", "Right",
    )
)  # fmt: skip
# OMOMO contact label columns (331 + joint index) that count as a hand touching the box.
HAND_LABEL_JOINTS = {
    side: tuple(i for i, n in enumerate(SMPLH_JOINTS) if n.startswith(f"{s}_") and (n.endswith("Wrist") or any(
        n.endswith(f) for f in _FINGERS)))
    for side, s in (("left", "L"), ("right", "R"))
}  # fmt: skip

# Proximity contacts (climbing): a wrist / ankle / toe keypoint this close to a box surface [m], and slow.
HAND_REACH = 0.09
FOOT_REACH = 0.06
CONTACT_SPEED = 0.6  # m/s


def package_root() -> Path:
    """The installed package folder (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            PACKAGE,
            "not installed: run `make setup` (or `pip install --no-deps holosoma_retargeting==0.1.0`)",
        )
    return Path(spec.submodule_search_locations[0])


def resolve(path: str | Path) -> tuple[str, Path]:
    """(kind 'omomo' | 'climb', data path) of a ``.holosoma`` pointer, an OMOMO ``.pt`` file or a climb folder."""
    path = Path(path)
    if path.suffix == ".pt":
        return "omomo", path
    if path.is_dir():
        return "climb", path
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read the pointer file: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("clip"), str) or set(raw) - {"clip", "licence"}:
        raise InputError(path, "expected YAML {clip: OMOMO_new/<name> | climb/<name>} (optional licence)")
    target = package_root() / "demo_data" / raw["clip"]
    if raw["clip"].startswith("OMOMO_new/"):
        target = target.with_suffix(".pt")
        kind = "omomo"
    elif raw["clip"].startswith("climb/"):
        kind = "climb"
    else:
        raise InputError(path, f"unknown clip '{raw['clip']}': expected OMOMO_new/<name> or climb/<name>")
    if not target.exists():
        raise InputError(path, f"{target} does not exist in the installed {PACKAGE}")
    return kind, target


_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64}


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    ).copy()


class _TensorUnpickler(pickle.Unpickler):
    """torch's zip serialisation read with a whitelist (the guarantee of ``weights_only=True``): only the
    tensor-rebuild function, float storages and OrderedDict are admitted; no other code can run."""

    def __init__(self, data: bytes, zf: Any, prefix: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.zf, self.prefix = zf, prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            from collections import OrderedDict

            return OrderedDict
        raise pickle.UnpicklingError(f"refusing {module}.{name}")

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, storage, key, _location, numel = pid
        if kind != "storage" or storage not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage {pid!r}")
        raw = self.zf.read(f"{self.prefix}/data/{key}")
        return np.frombuffer(
            raw, dtype=np.dtype(_STORAGE_DTYPES[storage]).newbyteorder("<"), count=int(numel)
        )


def _load_tensor(path: Path) -> np.ndarray:
    """The (T, 591) tensor of an OMOMO ``.pt`` file, without torch and without running pickled code."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise InputError(path, "not a torch zip file (no single */data.pkl)")
            prefix = pkl[0].rsplit("/", 1)[0]
            order = (
                zf.read(f"{prefix}/byteorder").decode()
                if f"{prefix}/byteorder" in zf.namelist()
                else "little"
            )
            if order != "little":
                raise InputError(path, f"unsupported byte order {order}")
            t = _TensorUnpickler(zf.read(pkl[0]), zf, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
        raise InputError(path, f"not a safe tensor file ({type(e).__name__}: {e})") from None
    if not isinstance(t, np.ndarray) or t.ndim != 2 or t.shape[1] != 591:
        raise InputError(
            path, f"expected one (T, 591) tensor, got {type(t).__name__} {getattr(t, 'shape', '')}"
        )
    return t.astype(np.float64)


class _NumpyScalars(pickle.Unpickler):
    """Admits numpy scalars and dtypes only: anything else in the pickle is refused, nothing else runs."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            from numpy.core.multiarray import scalar  # type: ignore[attr-defined]

            return scalar
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def subject_heights() -> dict[str, float]:
    path = package_root() / "demo_data" / "height_dict.pkl"
    with open(path, "rb") as f:
        d = _NumpyScalars(f).load()
    return {str(k): float(v) for k, v in d.items()}


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (F, 3) triangles of a Wavefront OBJ (polygons fanned into triangles)."""
    verts: list[list[float]] = []
    faces: list[list[int]] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(x) for x in parts[1:4]])
        elif parts[0] == "f":
            idx = [int(p.split("/")[0]) - 1 for p in parts[1:]]
            faces.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
    if len(verts) < 4 or not faces:
        raise InputError(path, "mesh has fewer than 4 vertices or no faces")
    return np.array(verts), np.array(faces, dtype=np.int64)


def _human(pos: np.ndarray, fps: float, height: float, source: dict[str, Any]) -> HumanMotion:
    from pipeline.motion.video_fit import segment_rotations, unit

    i = {n: k for k, n in enumerate(CANONICAL_JOINTS)}
    left = pos[:, i["left_shoulder"]] - pos[:, i["right_shoulder"]]
    face = unit(np.cross(left, pos[:, i["head"]] - pos[:, i["torso"]]))
    return HumanMotion(
        fps=fps,
        joint_names=CANONICAL_JOINTS,
        parents=np.array(CANONICAL_PARENTS),
        pos_w=pos,
        quat_w=segment_rotations(pos, face),
        contacts=np.zeros((len(pos), len(CONTACT_NAMES)), bool),
        subject_height=height,
        source=source,
    ).validate(source.get("file"))


def read_omomo(path: Path, origin: Path | None = None) -> tuple[HumanMotion, Scene]:
    """An OMOMO human-box clip (.pt) -> (HumanMotion at 30 fps, unprocessed; Scene with the box)."""
    origin = origin or path
    a = _load_tensor(path)
    joints = a[:, 162:318].reshape(-1, 52, 3)
    sub = path.stem.split("_")[0]
    heights = subject_heights()
    if sub not in heights:
        raise InputError(origin, f"no height for subject '{sub}' in height_dict.pkl")
    source = {
        "format": "holosoma-omomo",
        "file": Path(origin).name,
        "data": f"{PACKAGE}/demo_data/OMOMO_new/{path.name}",
        "sha256": sha256_file(path),
        "licence": LICENCE,
        "skeleton": "SMPL-H 52 joints (holosoma order)",
    }
    human = _human(joints[:, list(SMPLH_TO_CANONICAL)], OMOMO_FPS, heights[sub], source)
    verts, faces = read_obj(package_root() / "models" / "largebox" / "largebox.obj")
    box_q = a[:, [324, 321, 322, 323]]
    box_q /= np.linalg.norm(box_q, axis=1, keepdims=True)
    box = SceneObject(
        "largebox", verts, faces, a[:, 318:321].copy(), box_q, False, "mesh:models/largebox/largebox.obj"
    )
    labels = a[:, 331:383] > 0.5
    contacts = np.stack(
        [labels[:, list(HAND_LABEL_JOINTS[s])].any(axis=1) for s in ("left", "right")], axis=1
    )
    scene = Scene(
        fps=OMOMO_FPS,
        objects=(box,),
        contact_bodies=("left_wrist", "right_wrist"),
        contact_objects=np.zeros(2, np.int64),
        contacts=contacts,
        source={**source, "contacts": "OMOMO per-joint labels (+1) of each hand's wrist and fingers"},
    )
    return human, scene.validate(origin)


def read_climb(folder: Path, origin: Path | None = None) -> tuple[HumanMotion, Scene]:
    """A climbing clip folder -> (HumanMotion at 120 fps, unprocessed; Scene with static terrain boxes)."""
    from pipeline.motion.process import estimate_height
    from pipeline.retarget.interaction_geometry import ConvexSet

    origin = origin or folder
    files = sorted(folder.glob("*_joint_positions_*.npy"))
    if not files:
        raise InputError(origin, f"no *_joint_positions_*.npy in {folder}")
    raw = np.load(files[0], allow_pickle=False)
    if raw.ndim != 3 or raw.shape[1:] != (53, 3):
        raise InputError(files[0], f"expected (T, 53, 3) joint positions, got {raw.shape}")
    pos = raw[:, list(MOCAP_TO_CANONICAL)].astype(np.float64)
    source = {
        "format": "holosoma-climb",
        "file": Path(origin).name,
        "data": f"{PACKAGE}/demo_data/climb/{folder.name}/{files[0].name}",
        "sha256": sha256_file(files[0]),
        "licence": LICENCE,
        "skeleton": "mocap 53 joints (holosoma MOCAP order)",
    }
    probe = _human(pos, CLIMB_FPS, 1.7, source)
    human = probe.replace(subject_height=estimate_height(probe))
    objs = []
    t = len(pos)
    for f in sorted((folder / "box_models").glob("box*.obj")):
        v, fc = read_obj(f)
        objs.append(
            SceneObject(
                f.stem, v, fc, np.zeros((t, 3)), np.tile([1.0, 0, 0, 0], (t, 1)), True, f"box:{f.name}"
            )
        )
    if not objs:
        raise InputError(origin, "no terrain boxes (box_models/box*.obj)")
    # Proximity contacts: hands (wrist keypoint) and feet (ankle or toe) near a box surface and slow.
    parts = {"left_wrist": ("left_wrist",), "right_wrist": ("right_wrist",),
             "left_ankle": ("left_ankle", "left_toe"), "right_ankle": ("right_ankle", "right_toe")}  # fmt: skip
    bodies, objects, cols = [], [], []
    for oi, o in enumerate(objs):
        cs = ConvexSet.from_mesh(o.vertices, o.faces)
        for part, kps in parts.items():
            reach = HAND_REACH if part.endswith("wrist") else FOOT_REACH
            near = np.zeros(t, bool)
            for kp in kps:
                p = pos[:, CANONICAL_JOINTS.index(kp)]
                speed = np.linalg.norm(np.gradient(p, 1.0 / CLIMB_FPS, axis=0), axis=1)
                d, grad, _ = cs.signed_distance(p)
                ok = (d < reach) & (speed < CONTACT_SPEED)
                if not part.endswith("wrist"):
                    ok &= grad[:, 2] > 0.7  # a foot stands on a top face, not beside the box
                near |= ok
            near = _debounce(near, int(CLIMB_FPS * 0.1))
            if near.any():
                bodies.append(part)
                objects.append(oi)
                cols.append(near)
    scene = Scene(
        fps=CLIMB_FPS,
        objects=tuple(objs),
        contact_bodies=tuple(bodies),
        contact_objects=np.array(objects, np.int64),
        contacts=np.stack(cols, axis=1) if cols else np.zeros((t, 0), bool),
        source={**source, "contacts": f"proximity: wrist < {HAND_REACH} m from a box surface, ankle/toe < "
                f"{FOOT_REACH} m above a top face, and slower than {CONTACT_SPEED} m/s, runs shorter than 0.1 s dropped"},
    )  # fmt: skip
    return human, scene.validate(origin)


def _debounce(x: np.ndarray, min_run: int) -> np.ndarray:
    """Drop True runs shorter than ``min_run`` frames."""
    out = x.copy()
    d = np.diff(np.concatenate([[0], x.astype(np.int8), [0]]))
    for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
        if e - s < min_run:
            out[s:e] = False
    return out


def read_raw(path: str | Path) -> tuple[HumanMotion, Scene]:
    """Unprocessed (HumanMotion, Scene) of a ``.holosoma`` pointer or OMOMO ``.pt`` file."""
    kind, target = resolve(path)
    return read_omomo(target, Path(path)) if kind == "omomo" else read_climb(target, Path(path))


def read_holosoma(path: str | Path) -> HumanMotion:
    """The :func:`pipeline.motion.read_clip` reader: the HumanMotion only (the scene: :func:`read_scene`)."""
    return read_raw(path)[0]


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, R (3, 3), t) with dst ~ scale * R @ src + t (Umeyama), from (N, 3) point pairs."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    s_mat = np.diag([1.0, 1.0, d])
    rot = u @ s_mat @ vt
    scale = float(np.trace(np.diag(sig) @ s_mat) / (a**2).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def read_scene(path: str | Path, human: HumanMotion) -> Scene:
    """The Scene of clip ``path`` in the frame and at the rate of ``human`` (the processed HumanMotion).

    ``read_clip`` moves the human (floor, facing +x, maybe a uniform scale to a given height, resampling); the
    same rigid move (and scale) is found from frame 0 of the raw and processed keypoints and applied to the
    scene, which is then resampled to ``human.fps``.
    """
    from pipeline.geometry import matrix_to_quat

    raw, scene = read_raw(path)
    scale, rot, trans = similarity(raw.pos_w[0], human.pos_w[0])
    if abs(scale - 1.0) < 1e-6:
        scale = 1.0
    scene = scene.transformed(matrix_to_quat(rot), trans, scale)
    return resample_scene(scene, human.fps, human.num_frames)


def resample_scene(scene: Scene, fps: float, frames: int | None = None) -> Scene:
    """Scene at ``fps`` (positions linear, rotations slerp, contacts nearest), ``frames`` long if given."""
    from dataclasses import replace

    from pipeline.motion.process import slerp

    if abs(scene.fps - fps) < 1e-9 * fps and (frames is None or frames == scene.num_frames):
        return scene
    t = scene.num_frames
    n = frames if frames is not None else int(np.floor((t - 1) * fps / scene.fps + 1e-9)) + 1
    x = np.minimum(np.arange(n) * scene.fps / fps, t - 1)
    i0 = np.clip(np.floor(x).astype(np.int64), 0, max(t - 2, 0))
    i1 = np.minimum(i0 + 1, t - 1)
    a = (x - i0).clip(0.0, 1.0)[:, None]
    objs = tuple(
        replace(o, pos_w=(1 - a) * o.pos_w[i0] + a * o.pos_w[i1], quat_w=slerp(o.quat_w[i0], o.quat_w[i1], a))
        for o in scene.objects
    )
    near = np.clip(np.rint(x).astype(np.int64), 0, t - 1)
    return scene.replace(fps=float(fps), objects=objs, contacts=scene.contacts[near])


__all__ = ["read_climb", "read_holosoma", "read_omomo", "read_raw", "read_scene", "resolve"]
