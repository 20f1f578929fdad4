"""Ground-truth test videos: a human body mesh driven by a HumanMotion, rendered offscreen with MuJoCo.

The body is Anny (the ``anny`` package: a free parametric human body model, Apache-2.0 code and CC0 assets,
weights in the wheel), rigged with CMU MotionBuilder bone names. Each canonical keypoint's world rotation
(``quat_w``, relative to the canonical rest pose) turns the Anny bone that starts there, re-expressed against
Anny's own rest pose the way readers re-express theirs (:func:`pipeline.motion.process.rest_correction`); the
spine and neck bones between two keypoints take an interpolated rotation. The mesh is scaled to the subject's
height and its root path scaled by the leg-length ratio (no skating), so the body's own joints are the ground
truth: :func:`render_video` returns them as a HumanMotion (floor aligned, contacts detected like any clip).

The mesh is drawn as a few coloured parts (skin, shirt, trousers, shoes) in an otherwise empty MuJoCo world
with a textured floor; each frame's skinned vertices are uploaded to the renderer's mesh buffers. The camera is
fixed and its pinhole intrinsics are returned, so video extraction can be measured against the clip the video
was made from. Set ``MUJOCO_GL=egl`` (or ``osmesa``) before import when there is no display. The first Anny
build takes about a minute and is cached by the package.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.geometry import quat_conj, quat_mul, quat_to_matrix
from pipeline.motion.human import CANONICAL_JOINTS, HumanMotion
from pipeline.motion.process import align_floor, detect_contacts, leg_length, rest_correction, slerp

_SCENE = """
<mujoco>
  <visual><global offwidth="{w}" offheight="{h}"/><quality shadowsize="2048"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.55 0.55 0.5" rgb2="0.45 0.45 0.42"
             width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="8 8"/>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.75 0.8 0.85" rgb2="0.55 0.6 0.65"
             width="64" height="64"/>
    {assets}
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="-0.3 0.3 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
    <geom type="plane" size="40 40 0.1" material="grid"/>
    <camera name="cam" pos="{cx} {cy} {cz}" xyaxes="{xa}" fovy="{fovy}"/>
    {geoms}
  </worldbody>
</mujoco>
"""

SKIN = (0.86, 0.68, 0.55, 1.0)
SHIRT = (0.2, 0.35, 0.7, 1.0)
TROUSERS = (0.25, 0.25, 0.3, 1.0)
SHOES = (0.1, 0.1, 0.1, 1.0)


@dataclass(frozen=True)
class Camera:
    """A fixed pinhole camera: world position, rotation (columns = camera x right, y up, z backward,
    MuJoCo's convention) and intrinsics in pixels."""

    pos_w: np.ndarray
    rot_w: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def intrinsics(self) -> dict[str, float]:
        return {"fx": float(self.fx), "fy": float(self.fy), "cx": float(self.cx), "cy": float(self.cy)}


def look_at_camera(
    target_w: np.ndarray, eye_w: np.ndarray, *, fovy_deg: float, width: int, height: int
) -> Camera:
    """A camera at ``eye_w`` looking at ``target_w`` with the world z axis up in the image."""
    fwd = target_w - eye_w
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    f = 0.5 * height / np.tan(np.radians(fovy_deg) / 2.0)
    return Camera(
        pos_w=np.asarray(eye_w, dtype=float),
        rot_w=np.stack([right, up, -fwd], axis=1),
        fx=f,
        fy=f,
        cx=width / 2.0,
        cy=height / 2.0,
        width=width,
        height=height,
    )


def default_camera(
    motion: HumanMotion, *, width: int = 640, height: int = 480, fovy_deg: float = 60.0
) -> Camera:
    """A static camera beside the path, 30 degrees toward the front of the subject, at chest height, just
    far enough to keep the whole path in view (horizontally, with a margin)."""
    root = motion.pos_w[:, motion.index("pelvis"), :2]
    centre = np.array([*(root.min(axis=0) + root.max(axis=0)) / 2, 0.9])
    travel = root[-1] - root[0]
    along = travel / np.linalg.norm(travel) if np.linalg.norm(travel) > 0.5 else np.array([1.0, 0.0])
    left = np.array([-along[1], along[0]])
    direction = np.cos(np.radians(30)) * left + np.sin(np.radians(30)) * along
    span = float(np.ptp(root @ along)) + 1.5
    hfov = 2 * np.arctan(np.tan(np.radians(fovy_deg) / 2) * width / height)
    dist = max(3.0, 0.5 * span / np.tan(hfov / 2) / np.cos(np.radians(30)))
    eye = centre + np.array([*(dist * direction), 0.4])
    return look_at_camera(centre, eye, fovy_deg=fovy_deg, width=width, height=height)


ANNY_RIG = "cmu_mb"
ANNY_PHENOTYPE = {"gender": 0.5, "age": 0.5, "muscle": 0.5, "weight": 0.5, "height": 0.5, "proportions": 0.5}
# Anny's axes (facing -y, left +x, z up) to the world's (facing +x, left +y, z up): 90 degrees about z.
_A = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
# The Anny bone whose head each canonical keypoint is.
KEYPOINT_BONE = {
    "pelvis": "Hips",
    "torso": "Spine1",
    "head": "Head",
    **{
        f"{side}_{k}": f"{side.capitalize()}{bone}"
        for side in ("left", "right")
        for k, bone in (
            ("shoulder", "Arm"),
            ("elbow", "ForeArm"),
            ("wrist", "Hand"),
            ("hip", "UpLeg"),
            ("knee", "Leg"),
            ("ankle", "Foot"),
            ("toe", "ToeBase"),
        )
    },
}
# Spine and neck bones between two keypoints: (from, to, fraction) of the interpolated rotation. Every other
# bone turns with its parent, the toes too (mocap toe rotations are noisy, and Anny's toes reach well past the
# toe joint: bent toes would dig into the floor).
_BETWEEN = {
    "LowerBack": ("pelvis", "torso", 1 / 3),
    "Spine": ("pelvis", "torso", 2 / 3),
    "Neck": ("torso", "head", 0.5),
    "Neck1": ("torso", "head", 0.75),
}


def _colour(bone: str) -> tuple[float, float, float, float]:
    if "Foot" in bone or "Toe" in bone:
        return SHOES
    if any(k in bone for k in ("Hand", "Thumb", "Finger", "ForeArm", "Head", "Neck")):
        return SKIN
    if any(k in bone for k in ("Leg", "Hip")):
        return TROUSERS
    return SHIRT


@functools.cache
def _anny() -> tuple[Any, dict[str, np.ndarray]]:
    """The Anny model (world-orient pose parameters) and its rest state as numpy arrays."""
    try:
        import anny
        import torch
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"ground-truth videos need the anny body model (the 'test' extra): {e}") from None
    model = anny.Anny(rig=ANNY_RIG, pose_parameterization="world-orient")
    with torch.no_grad():
        out = model(phenotype_kwargs=ANNY_PHENOTYPE)
    rest = {k: v[0].double().numpy() for k, v in out.items() if k.startswith("rest_")}
    return model, rest


@dataclass(frozen=True)
class Body:
    """Anny posed by a motion.

    Attributes:
        pose: (T, B, 4, 4) Anny's world-orient pose parameters (its own axes and units).
        scale: Anny units to metres.
        offset: (3,) world translation after scaling (floor alignment).
        truth: the body's own canonical keypoints as a HumanMotion (floor aligned, contacts detected).
    """

    pose: np.ndarray
    scale: float
    offset: np.ndarray
    truth: HumanMotion

    def vertices(self, start: int, stop: int) -> np.ndarray:
        """(n, V, 3) world vertex positions of frames ``start:stop``, metres."""
        import torch

        model, rest = _anny()
        with torch.no_grad():
            transforms, _ = model.get_bone_transforms(
                torch.from_numpy(self.pose[start:stop]), torch.from_numpy(rest["rest_bone_poses"][None])
            )
            v = model.get_skinned_vertices(
                bone_transforms=transforms,
                rest_vertices=torch.from_numpy(rest["rest_vertices"][None]).expand(
                    transforms.shape[0], -1, -1
                ),
            )
        return self.scale * v.double().numpy() @ _A.T + self.offset


def pose_body(motion: HumanMotion) -> Body:
    """Drive Anny with ``motion``'s keypoint rotations and root path (scaled to its subject height)."""
    import torch

    model, rest = _anny()
    labels = list(model.bone_labels)
    parents = [int(p) for p in model.bone_parents]
    rot_rest = _A @ rest["rest_bone_poses"][:, :3, :3]  # (B, 3, 3) world axes
    heads = rest["rest_bone_poses"][:, :3, 3] @ _A.T
    verts = rest["rest_vertices"] @ _A.T
    scale = motion.subject_height / float(np.ptp(verts[:, 2]))
    bone = [labels.index(KEYPOINT_BONE[n]) for n in CANONICAL_JOINTS]
    rest_kp = scale * heads[bone]
    # keypoint rotations re-expressed against Anny's rest pose, then one rotation per bone
    g_kp = quat_mul(motion.quat_w, quat_conj(rest_correction(rest_kp - rest_kp[0], CANONICAL_JOINTS)))
    kp = {n: j for j, n in enumerate(CANONICAL_JOINTS)}
    g = np.empty((motion.num_frames, len(labels), 4))
    for b, name in enumerate(labels):
        if name in _BETWEEN:
            a, c, frac = _BETWEEN[name]
            g[:, b] = slerp(g_kp[:, kp[a]], g_kp[:, kp[c]], np.full((motion.num_frames, 1), frac))
        elif b in bone and "Toe" not in name:
            g[:, b] = g_kp[:, bone.index(b)]
        else:
            if not 0 <= parents[b] < b:
                raise ValueError(f"Anny bone {name}: parent {parents[b]} does not come first")
            g[:, b] = g[:, parents[b]]
    pose = np.zeros((motion.num_frames, len(labels), 4, 4))
    pose[..., :3, :3] = _A.T @ (quat_to_matrix(g) @ rot_rest)
    pose[..., 3, 3] = 1.0
    # root path scaled by the leg-length ratio, so planted feet stay planted on Anny's legs
    ratio = leg_length(rest_kp[None], CANONICAL_JOINTS) / leg_length(motion.pos_w, motion.joint_names)
    pose[:, 0, :3, 3] = (ratio / scale) * motion.pos_w[:, motion.index("pelvis")] @ _A
    with torch.no_grad():
        _, posed = model.get_bone_transforms(
            torch.from_numpy(pose), torch.from_numpy(rest["rest_bone_poses"][None])
        )
    pos = scale * posed.double().numpy()[..., :3, 3][:, bone] @ _A.T
    sole = float(verts[:, 2].min())
    sole_offset = {
        "ankle": scale * (heads[labels.index("LeftFoot"), 2] - sole),
        "toe": scale * (heads[labels.index("LeftToeBase"), 2] - sole),
    }
    truth = motion.replace(
        joint_names=CANONICAL_JOINTS,
        pos_w=pos,
        source={**motion.source, "sole_offset_m": sole_offset, "body": f"anny ({ANNY_RIG} rig)"},
    )
    aligned = align_floor(truth)
    offset = aligned.pos_w[0, 0] - truth.pos_w[0, 0]
    # frames where the skin would still dig into the floor (a pitched foot longer than the clip's) are lifted
    low = np.concatenate(
        [
            Body(pose, scale, offset, aligned).vertices(t, t + 64)[..., 2].min(axis=1)
            for t in range(0, motion.num_frames, 64)
        ]
    )
    lift = np.maximum(-low, 0.0)
    pose[:, 0, 2, 3] += lift / scale
    pos = aligned.pos_w + lift[:, None, None] * np.array([0.0, 0.0, 1.0])
    aligned = aligned.replace(pos_w=pos)
    aligned = aligned.replace(contacts=detect_contacts(aligned))
    return Body(pose=pose, scale=scale, offset=offset, truth=aligned.validate())


def _mesh_parts() -> list[tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]]:
    """Anny's mesh split by colour: (vertex indices, faces in those indices, rgba) per part; a face goes
    with the bone that weighs most on its first vertex."""
    model, _ = _anny()
    labels = list(model.bone_labels)
    w = model.vertex_bone_weights.numpy()
    idx = model.vertex_bone_indices.numpy()
    main = idx[np.arange(len(idx)), w.argmax(axis=1)]
    colours = np.array([_colour(labels[b]) for b in range(len(labels))])
    faces = model.get_triangular_faces().numpy()
    face_colour = colours[main[faces[:, 0]]]
    parts = []
    for rgba in np.unique(face_colour, axis=0):
        f = faces[(face_colour == rgba).all(axis=1)]
        verts, local = np.unique(f, return_inverse=True)
        r, g, b, a = (float(c) for c in rgba)
        parts.append((verts, local.reshape(f.shape), (r, g, b, a)))
    return parts


def _vertex_normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def render_frames(body: Body, camera: Camera, batch: int = 32) -> Iterator[np.ndarray]:
    """Yield the rendered RGB frames of ``body`` seen from ``camera``."""
    import mujoco

    parts = _mesh_parts()
    xa = " ".join(f"{v:.6f}" for v in (*camera.rot_w[:, 0], *camera.rot_w[:, 1]))
    fovy = float(np.degrees(2 * np.arctan(0.5 * camera.height / camera.fy)))
    first = body.vertices(0, 1)[0]
    assets, geoms = [], []
    for k, (vi, faces, rgba) in enumerate(parts):
        vert = " ".join(f"{x:.5f}" for x in first[vi].ravel())
        face = " ".join(str(i) for i in faces.ravel())
        assets.append(f'<mesh name="part{k}" vertex="{vert}" face="{face}"/>')
        geoms.append(
            f'<geom name="part{k}" type="mesh" mesh="part{k}" rgba="{" ".join(map(str, rgba))}" '
            'contype="0" conaffinity="0"/>'
        )
    xml = _SCENE.format(
        w=camera.width,
        h=camera.height,
        cx=camera.pos_w[0],
        cy=camera.pos_w[1],
        cz=camera.pos_w[2],
        xa=xa,
        fovy=fovy,
        assets="\n".join(assets),
        geoms="\n".join(geoms),
    )
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for k, (vi, _, _) in enumerate(parts):
        if model.mesh_vertnum[k] != len(vi):
            raise RuntimeError(f"MuJoCo changed the vertex count of body part {k}")
    eye3 = np.eye(3).ravel()
    with mujoco.Renderer(model, camera.height, camera.width) as renderer:
        for start in range(0, body.pose.shape[0], batch):
            for verts in body.vertices(start, min(start + batch, body.pose.shape[0])):
                for k, (vi, _, _) in enumerate(parts):
                    v = verts[vi]
                    va, fa = model.mesh_vertadr[k], model.mesh_faceadr[k]
                    na, nf = model.mesh_normaladr[k], model.mesh_facenum[k]
                    faces = model.mesh_face[fa : fa + nf]
                    model.mesh_vert[va : va + len(vi)] = v
                    normals = model.mesh_normal[na : na + model.mesh_normalnum[k]]
                    normals[model.mesh_facenormal[fa : fa + nf]] = _vertex_normals(v, faces)[faces]
                    mujoco.mjr_uploadMesh(model, renderer._mjr_context, k)
                renderer.update_scene(data, camera="cam")
                scene = renderer.scene
                for i in range(scene.ngeom):  # the meshes now hold world vertices: draw them unmoved
                    g = scene.geoms[i]
                    if g.objtype == mujoco.mjtObj.mjOBJ_GEOM and g.type == mujoco.mjtGeom.mjGEOM_MESH:
                        g.pos[:] = 0.0
                        g.mat[:] = eye3.reshape(3, 3)
                yield renderer.render().copy()


def render_video(
    motion: HumanMotion, path: str | Path, *, camera: Camera | None = None, quality: int = 8
) -> tuple[Camera, HumanMotion]:
    """Render Anny driven by ``motion`` to an mp4 (h264, the clip's fps) at ``path``: (the camera, the
    ground truth: the body's own keypoints)."""
    import imageio.v2 as imageio

    body = pose_body(motion)
    cam = camera or default_camera(body.truth)
    with imageio.get_writer(
        str(path), fps=motion.fps, codec="libx264", quality=quality, macro_block_size=1
    ) as w:
        for frame in render_frames(body, cam):
            w.append_data(frame)  # type: ignore[attr-defined]
    return cam, body.truth


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Align (N, 3) ``x`` to ``y`` with the best similarity transform (rotation, scale, translation)."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    u, s, vt = np.linalg.svd(xc.T @ yc)
    d = np.sign(np.linalg.det(u @ vt))
    e = np.diag([1.0, 1.0, d])
    r = u @ e @ vt  # x @ r ~ y
    scale = float((s * np.diag(e)).sum() / max((xc**2).sum(), 1e-12))
    return scale * xc @ r + my


def pa_mpjpe(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(T,) mean joint position error after per-frame Procrustes alignment, metres; (T, J, 3) inputs."""
    return np.array(
        [np.linalg.norm(procrustes(p, t) - t, axis=-1).mean() for p, t in zip(pred, true, strict=True)]
    )


def root_error(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Root trajectory error of (T, 3) paths as a fraction of the true horizontal distance travelled.

    The predicted path is first aligned to the true one by the best rotation about z and horizontal
    translation (the extraction cannot know where the camera stood). Returns the mean and final errors
    (3D, over distance) and the distance itself (m).
    """
    p, t = pred[:, :2] - pred[:, :2].mean(axis=0), true[:, :2] - true[:, :2].mean(axis=0)
    h = p.T @ t
    ang = np.arctan2(h[0, 1] - h[1, 0], h[0, 0] + h[1, 1])
    c, s = np.cos(ang), np.sin(ang)
    aligned = pred.copy()
    aligned[:, :2] = p @ np.array([[c, s], [-s, c]]) + true[:, :2].mean(axis=0)
    err = np.linalg.norm(aligned - true, axis=-1)
    dist = float(np.linalg.norm(np.diff(true[:, :2], axis=0), axis=-1).sum())
    return {
        "mean": float(err.mean() / max(dist, 1e-9)),
        "final": float(err[-1] / max(dist, 1e-9)),
        "distance_m": dist,
    }


def contact_agreement(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of (frame, foot) entries where two (T, C) bool contact arrays agree."""
    return float((pred == true).mean())
