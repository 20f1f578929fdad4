"""Ground-truth test videos: a clothed capsule body driven by a HumanMotion, rendered offscreen with MuJoCo.

The body is built from the 17 canonical keypoints of the clip (limb capsules, a torso, a head with eyes and
nose oriented by the head rotation) and drawn as scene geoms in an otherwise empty MuJoCo world with a
textured floor. The camera is fixed and its pinhole intrinsics are returned, so video extraction can be
measured against the clip the video was made from. Set ``MUJOCO_GL=egl`` (or ``osmesa``) before import
when there is no display.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.geometry import quat_to_matrix
from pipeline.motion.human import HumanMotion

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
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="-0.3 0.3 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
    <geom type="plane" size="40 40 0.1" material="grid"/>
    <camera name="cam" pos="{cx} {cy} {cz}" xyaxes="{xa}" fovy="{fovy}"/>
  </worldbody>
</mujoco>
"""

SKIN = (0.86, 0.68, 0.55, 1.0)
SHIRT = (0.2, 0.35, 0.7, 1.0)
TROUSERS = (0.25, 0.25, 0.3, 1.0)
SHOES = (0.1, 0.1, 0.1, 1.0)
DARK = (0.05, 0.05, 0.05, 1.0)
HAIR = (0.2, 0.12, 0.06, 1.0)


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


def _body_geoms(p: dict[str, np.ndarray], head_rot: np.ndarray, h: float) -> list[tuple]:
    """(kind, a, b_or_None, radius, rgba) primitives for one frame; sizes scale with height ``h``."""
    s = h / 1.7
    out: list[tuple] = []
    for side in ("left", "right"):
        out += [
            ("capsule", p[f"{side}_hip"], p[f"{side}_knee"], 0.075 * s, TROUSERS),
            ("capsule", p[f"{side}_knee"], p[f"{side}_ankle"], 0.055 * s, TROUSERS),
            ("capsule", p[f"{side}_ankle"], p[f"{side}_toe"], 0.045 * s, SHOES),
            ("capsule", p[f"{side}_shoulder"], p[f"{side}_elbow"], 0.05 * s, SHIRT),
            ("capsule", p[f"{side}_elbow"], p[f"{side}_wrist"], 0.04 * s, SKIN),
            ("sphere", p[f"{side}_wrist"], None, 0.05 * s, SKIN),
        ]
    hip_c = (p["left_hip"] + p["right_hip"]) / 2
    sh_c = (p["left_shoulder"] + p["right_shoulder"]) / 2
    out += [
        ("capsule", p["left_hip"], p["right_hip"], 0.1 * s, TROUSERS),
        ("capsule", hip_c, p["torso"], 0.14 * s, SHIRT),
        ("capsule", p["torso"], sh_c, 0.13 * s, SHIRT),
        ("capsule", p["left_shoulder"], p["right_shoulder"], 0.065 * s, SHIRT),
        ("capsule", sh_c, p["head"], 0.045 * s, SKIN),
    ]
    fwd, left, up = head_rot[:, 0], head_rot[:, 1], head_rot[:, 2]
    centre = p["head"] + 0.09 * s * up + 0.02 * s * fwd
    out += [
        ("sphere", centre, None, 0.1 * s, SKIN),
        ("sphere", centre + 0.03 * s * up - 0.025 * s * fwd, None, 0.095 * s, HAIR),
        ("sphere", centre + 0.085 * s * fwd + 0.035 * s * left + 0.02 * s * up, None, 0.014 * s, DARK),
        ("sphere", centre + 0.085 * s * fwd - 0.035 * s * left + 0.02 * s * up, None, 0.014 * s, DARK),
        ("sphere", centre + 0.1 * s * fwd - 0.01 * s * up, None, 0.018 * s, SKIN),
        (
            "capsule",
            centre + 0.08 * s * fwd - 0.045 * s * up + 0.025 * s * left,
            centre + 0.08 * s * fwd - 0.045 * s * up - 0.025 * s * left,
            0.008 * s,
            (0.5, 0.2, 0.2, 1.0),
        ),
        ("sphere", centre + 0.095 * s * left, None, 0.025 * s, SKIN),
        ("sphere", centre - 0.095 * s * left, None, 0.025 * s, SKIN),
    ]
    return out


def render_frames(motion: HumanMotion, camera: Camera) -> Iterator[np.ndarray]:
    """Yield the rendered RGB frames of ``motion`` seen from ``camera``."""
    import mujoco

    xa = " ".join(f"{v:.6f}" for v in (*camera.rot_w[:, 0], *camera.rot_w[:, 1]))
    fovy = float(np.degrees(2 * np.arctan(0.5 * camera.height / camera.fy)))
    xml = _SCENE.format(
        w=camera.width,
        h=camera.height,
        cx=camera.pos_w[0],
        cy=camera.pos_w[1],
        cz=camera.pos_w[2],
        xa=xa,
        fovy=fovy,
    )
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    head_rot = quat_to_matrix(motion.quat_w[:, motion.index("head")])  # (T, 3, 3)
    eye3 = np.eye(3).ravel()
    with mujoco.Renderer(model, camera.height, camera.width) as renderer:
        for t in range(motion.num_frames):
            renderer.update_scene(data, camera="cam")
            scene = renderer.scene
            p = {n: motion.pos_w[t, i] for i, n in enumerate(motion.joint_names)}
            for kind, a, b, r, rgba in _body_geoms(p, head_rot[t], motion.subject_height):
                if scene.ngeom >= scene.maxgeom:
                    break
                g = scene.geoms[scene.ngeom]
                if kind == "sphere":
                    mujoco.mjv_initGeom(
                        g, mujoco.mjtGeom.mjGEOM_SPHERE, np.array([r, r, r]), a, eye3, np.array(rgba)
                    )
                else:
                    mujoco.mjv_initGeom(
                        g, mujoco.mjtGeom.mjGEOM_CAPSULE, np.zeros(3), np.zeros(3), eye3, np.array(rgba)
                    )
                    mujoco.mjv_connector(g, mujoco.mjtGeom.mjGEOM_CAPSULE, r, a, b)
                scene.ngeom += 1
            yield renderer.render().copy()


def render_video(
    motion: HumanMotion, path: str | Path, *, camera: Camera | None = None, quality: int = 8
) -> Camera:
    """Render ``motion`` to an mp4 (h264, the clip's fps) at ``path``; returns the camera used."""
    import imageio.v2 as imageio

    cam = camera or default_camera(motion)
    with imageio.get_writer(
        str(path), fps=motion.fps, codec="libx264", quality=quality, macro_block_size=1
    ) as w:
        for frame in render_frames(motion, cam):
            w.append_data(frame)  # type: ignore[attr-defined]
    return cam


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
