"""AMASS / SMPL-X (and SMPL+H) ``.npz`` motions through the ``smplx`` package and user-supplied model files.

Model files are never shipped: ``body_model`` is a folder holding ``SMPLX_NEUTRAL.npz`` (and optionally
``SMPLX_MALE.npz`` / ``SMPLX_FEMALE.npz``, ``.pkl`` also accepted, or the same under ``smplx/``). The
gendered model named by the clip is used when present, else the neutral one; the choice is recorded.

Clip keys: ``trans`` (T, 3); ``root_orient`` (T, 3) and ``pose_body`` (T, 63), or ``poses`` (T, 156 | 165)
whose first 66 values are the same; ``betas``; ``gender``; ``mocap_frame_rate`` or ``mocap_framerate``.
AMASS's world is z-up. Joint positions come from the smplx forward pass; joint world rotations from chaining
the axis-angle rotations along the kinematic tree, expressed against the canonical rest pose (the model's
rest is a T-pose, y-up, facing +z: see :func:`pipeline.motion.process.rest_correction`).

Keypoints (SMPL-X joint names): pelvis, spine3 (torso), head, left/right shoulder (upper arm), elbow, wrist,
hip, knee, ankle, and ``*_foot`` as the toe. Height and sole offsets come from the shaped mesh at rest.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.geometry import matrix_to_quat, quat_mul
from pipeline.io import sha256_file
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS, CONTACT_NAMES, HumanMotion

# First 22 SMPL / SMPL-H / SMPL-X joints and their parents.
BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
KEYPOINT_INDEX = {
    "pelvis": 0,
    "torso": 9,
    "head": 15,
    "left_shoulder": 16,
    "left_elbow": 18,
    "left_wrist": 20,
    "right_shoulder": 17,
    "right_elbow": 19,
    "right_wrist": 21,
    "left_hip": 1,
    "left_knee": 4,
    "left_ankle": 7,
    "left_toe": 10,
    "right_hip": 2,
    "right_knee": 5,
    "right_ankle": 8,
    "right_toe": 11,
}
# model frame (y up, facing +z, left +x) -> canonical world (z up, facing +x, left +y): rows are world axes
MODEL_TO_WORLD = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
CHUNK = 256


def _str(value: Any) -> str:
    v = np.asarray(value)
    s = v.item() if v.ndim == 0 else v.tolist()
    return s.decode() if isinstance(s, bytes) else str(s)


def load_clip(path: Path) -> dict[str, Any]:
    """Read and check the clip arrays; InputError on anything missing or malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(path, f"not a readable AMASS npz ({e})") from None
    if "trans" not in d:
        raise InputError(path, "not an AMASS motion: no 'trans' array")
    trans = np.asarray(d["trans"], dtype=np.float64)
    if trans.ndim != 2 or trans.shape[1] != 3:
        raise InputError(path, f"'trans' must be (T, 3), got {trans.shape}")
    t = trans.shape[0]
    if t == 0:
        raise InputError(path, "the clip has zero frames")
    if "root_orient" in d and "pose_body" in d:
        root, body = np.asarray(d["root_orient"], np.float64), np.asarray(d["pose_body"], np.float64)
    elif "poses" in d:
        poses = np.asarray(d["poses"], np.float64)
        if poses.ndim != 2 or poses.shape[1] < 66:
            raise InputError(path, f"'poses' must be (T, >=66), got {poses.shape}")
        root, body = poses[:, :3], poses[:, 3:66]
    else:
        raise InputError(path, "no 'root_orient' + 'pose_body' nor 'poses' arrays")
    if root.shape != (t, 3) or body.shape != (t, 63):
        raise InputError(
            path, f"pose arrays must be (T, 3) and (T, 63) with T = {t}: {root.shape}, {body.shape}"
        )
    fps_key = next((k for k in ("mocap_frame_rate", "mocap_framerate") if k in d), None)
    if fps_key is None:
        raise InputError(path, "no 'mocap_frame_rate' (or 'mocap_framerate')")
    fps = float(d[fps_key])
    betas = np.asarray(d.get("betas", np.zeros(10)), np.float64).reshape(-1)
    for name, arr in (("trans", trans), ("root_orient", root), ("pose_body", body), ("betas", betas)):
        if not np.isfinite(arr).all():
            frame = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise InputError(path, f"'{name}' has NaN or infinite values (first at index {frame})")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(path, f"frame rate must be positive, got {fps}")
    gender = _str(d["gender"]).lower() if "gender" in d else "neutral"
    kind = _str(d["surface_model_type"]).lower() if "surface_model_type" in d else ""
    if not kind:
        kind = "smplh" if "poses" in d and np.shape(d["poses"])[1] == 156 else "smplx"
    return {
        "trans": trans,
        "root": root,
        "body": body,
        "betas": betas,
        "fps": fps,
        "gender": gender,
        "kind": kind,
    }


def find_model_file(body_model: Path, kind: str, gender: str, origin: Path) -> Path:
    prefix = {"smplx": "SMPLX", "smplh": "SMPLH"}.get(kind)
    if prefix is None:
        raise InputError(origin, f"unsupported surface model '{kind}' (smplx or smplh)")
    for g in (gender.upper(), "NEUTRAL"):
        for folder in (body_model, body_model / kind):
            for ext in ("npz", "pkl"):
                f = folder / f"{prefix}_{g}.{ext}"
                if f.is_file():
                    return f
    names = " or ".join(dict.fromkeys(f"{prefix}_{g}" for g in (gender.upper(), "NEUTRAL")))
    raise InputError(body_model, f"no {names} model file (.npz or .pkl) in this folder")


def _rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape((*v.shape[:-1], 3, 3))


def global_rotations(root: np.ndarray, body: np.ndarray) -> np.ndarray:
    """(T, 22, 3, 3) world rotations of the body joints (model rest frame -> world)."""
    local = _rotvec_to_matrix(np.concatenate([root[:, None], body.reshape(-1, 21, 3)], axis=1))
    out = np.empty_like(local)
    for j, p in enumerate(BODY_PARENTS):
        out[:, j] = local[:, j] if p < 0 else out[:, p] @ local[:, j]
    return out


def _forward(model: Any, clip: dict[str, Any], nb: int, frames: slice) -> tuple[np.ndarray, np.ndarray]:
    """smplx forward pass on a frame range: (joints (B, J, 3), vertices (B, V, 3))."""
    import torch

    b = len(range(*frames.indices(clip["trans"].shape[0])))

    def z(n: int) -> torch.Tensor:
        return torch.zeros((b, n), dtype=torch.float32)

    def f(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.array(a, dtype=np.float32))

    kwargs: dict[str, Any] = {
        "betas": f(np.broadcast_to(clip["betas"][:nb], (b, nb))),
        "global_orient": f(clip["root"][frames]),
        "body_pose": f(clip["body"][frames]),
        "transl": f(clip["trans"][frames]),
        "left_hand_pose": z(45),
        "right_hand_pose": z(45),
    }
    if clip["kind"] == "smplx":
        kwargs.update(
            jaw_pose=z(3), leye_pose=z(3), reye_pose=z(3), expression=z(model.num_expression_coeffs)
        )
    with torch.no_grad():
        out = model(**kwargs)
    return out.joints.numpy().astype(np.float64), out.vertices.numpy().astype(np.float64)


def read_amass(path: str | Path, *, body_model: str | Path | None = None) -> HumanMotion:
    """Read an AMASS / SMPL-X npz into an unprocessed canonical :class:`HumanMotion` (z-up metres)."""
    path = Path(path)
    clip = load_clip(path)
    if body_model is None:
        raise InputError(
            path, "AMASS / SMPL-X input needs --body-model DIR (a folder with SMPLX_NEUTRAL.npz)"
        )
    body_model = Path(body_model)
    if not body_model.is_dir():
        raise InputError(body_model, "body model folder not found")
    model_file = find_model_file(body_model, clip["kind"], clip["gender"], path)
    try:
        import smplx
    except ImportError:
        raise InputError(path, "AMASS input needs the smplx extra: pip install 'mimic[smplx]'") from None
    nb = min(len(clip["betas"]), 16) or 1
    cls = smplx.SMPLX if clip["kind"] == "smplx" else smplx.SMPLH
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints notes about the number of coefficients
            model = cls(
                model_path=str(model_file), ext=model_file.suffix[1:], num_betas=nb, use_pca=False,
                flat_hand_mean=True, batch_size=1,
            )  # fmt: skip
    except (KeyError, AttributeError, ValueError, OSError, RuntimeError, AssertionError) as e:
        raise InputError(
            model_file, f"cannot load the body model with smplx ({type(e).__name__}: {e})"
        ) from None
    nb = min(nb, int(model.num_betas))
    t = clip["trans"].shape[0]
    joints = np.concatenate(
        [_forward(model, clip, nb, slice(s, min(s + CHUNK, t)))[0][:, :22] for s in range(0, t, CHUNK)]
    )
    rest_clip = {**clip, "root": np.zeros((1, 3)), "body": np.zeros((1, 63)), "trans": np.zeros((1, 3))}
    rest_j, rest_v = _forward(model, rest_clip, nb, slice(0, 1))
    sel = [KEYPOINT_INDEX[n] for n in CANONICAL_JOINTS]
    c = MODEL_TO_WORLD
    rest_w = (rest_j[0, sel] - rest_j[0, 0]) @ c.T
    sole_y = float(rest_v[0, :, 1].min())
    height = float(rest_v[0, :, 1].max() - sole_y)
    from pipeline.motion.process import rest_correction

    rot = global_rotations(clip["root"], clip["body"])[:, sel] @ c.T
    quat_w = quat_mul(matrix_to_quat(rot), rest_correction(rest_w, CANONICAL_JOINTS))
    ankle = 0.5 * (rest_j[0, 7, 1] + rest_j[0, 8, 1]) - sole_y
    toe = 0.5 * (rest_j[0, 10, 1] + rest_j[0, 11, 1]) - sole_y
    return HumanMotion(
        fps=clip["fps"],
        joint_names=CANONICAL_JOINTS,
        parents=np.array(CANONICAL_PARENTS, dtype=np.int64),
        pos_w=joints[:, sel],
        quat_w=quat_w,
        contacts=np.zeros((t, len(CONTACT_NAMES)), dtype=bool),
        subject_height=height,
        source={
            "format": "amass",
            "file": path.name,
            "sha256": sha256_file(path),
            "body_model": model_file.name,
            "surface_model": clip["kind"],
            "gender": clip["gender"],
            "num_betas": nb,
            "rest_pos": np.round(rest_w, 6).tolist(),
            "sole_offset_m": {"ankle": float(ankle), "toe": float(toe)},
        },
    ).validate(path)
