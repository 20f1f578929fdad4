"""Offscreen MuJoCo rendering of a RobotMotion, with the scaled human keypoints drawn beside the robot.

Works headless (MUJOCO_GL=egl or osmesa, set before mujoco is imported; the CLI defaults to egl).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from pipeline.errors import InputError
from pipeline.io import atomic_path
from pipeline.motion.human import CANONICAL_JOINTS, CANONICAL_PARENTS
from pipeline.robot.model import mujoco_model
from pipeline.robot.motion import RobotMotion

HUMAN_OFFSET_W = np.array([0.0, 1.0, 0.0])  # the human skeleton is drawn 1 m to the robot's left
KEYPOINT_RGBA = np.array([0.9, 0.3, 0.2, 1.0], dtype=np.float32)
BONE_RGBA = np.array([0.9, 0.6, 0.2, 1.0], dtype=np.float32)


def _add_geom(scene: mujoco.MjvScene, gtype: int, size, pos, mat, rgba) -> mujoco.MjvGeom | None:
    if scene.ngeom >= scene.maxgeom:
        return None
    geom = scene.geoms[scene.ngeom]
    mujoco.mjv_initGeom(geom, gtype, np.asarray(size, np.float64), np.asarray(pos, np.float64), mat, rgba)
    scene.ngeom += 1
    return geom


def draw_skeleton(scene: mujoco.MjvScene, names: tuple[str, ...], pos_w: np.ndarray) -> None:
    """Draw (K, 3) keypoints as spheres and, for canonical keypoints, bones to their parents."""
    eye = np.eye(3).ravel()
    for p in pos_w:
        _add_geom(scene, mujoco.mjtGeom.mjGEOM_SPHERE, [0.03, 0, 0], p, eye, KEYPOINT_RGBA)
    index = {n: i for i, n in enumerate(names)}
    for child, parent in enumerate(CANONICAL_PARENTS):
        if parent < 0:
            continue
        a, b = CANONICAL_JOINTS[child], CANONICAL_JOINTS[parent]
        if a in index and b in index:
            geom = _add_geom(scene, mujoco.mjtGeom.mjGEOM_CAPSULE, [0.01, 0, 0], [0, 0, 0], eye, BONE_RGBA)
            if geom is not None:
                mujoco.mjv_connector(
                    geom, mujoco.mjtGeom.mjGEOM_CAPSULE, 0.012, pos_w[index[a]], pos_w[index[b]]
                )


def render_frames(motion: RobotMotion, *, width: int = 640, height: int = 480, fps: float = 30.0):
    """Yield (H, W, 3) uint8 frames of ``motion`` resampled to ``fps`` (nearest frame)."""
    model = mujoco_model(motion.robot)
    data = mujoco.MjData(model)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.distance, cam.azimuth, cam.elevation = 3.2, 150.0, -15.0
    qpos = motion.qpos
    duration = motion.num_frames / motion.fps
    times = np.arange(0.0, duration, 1.0 / fps)
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False  # 2-3x faster in software GL
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        for t in times:
            i = min(round(t * motion.fps), motion.num_frames - 1)
            data.qpos[:] = qpos[i]
            mujoco.mj_forward(model, data)
            cam.lookat[:] = qpos[i, :3] + 0.5 * HUMAN_OFFSET_W
            cam.lookat[2] = 0.8
            renderer.update_scene(data, camera=cam)
            if motion.keypoint_pos_w.shape[1]:
                draw_skeleton(
                    renderer.scene, motion.keypoint_names, motion.keypoint_pos_w[i] + HUMAN_OFFSET_W
                )
            yield renderer.render()


def render_file(motion_path: str | Path, output: str | Path, *, width: int = 640, height: int = 480) -> Path:
    """Render a RobotMotion file to an mp4 (h264). Nothing is written if rendering fails."""
    import imageio.v2 as imageio
    from tqdm import tqdm

    motion = RobotMotion.load(motion_path)
    output = Path(output)
    if output.suffix.lower() != ".mp4":
        raise InputError(output, "the output must be an .mp4 file")
    fps = 30.0
    total = int(np.ceil(motion.num_frames / motion.fps * fps))
    with atomic_path(output, ".mp4") as tmp:
        writer = imageio.get_writer(
            tmp, fps=fps, codec="libx264", quality=7, macro_block_size=8, format="FFMPEG"
        )
        try:
            for frame in tqdm(
                render_frames(motion, width=width, height=height, fps=fps),
                total=total,
                desc=f"render {output.name}",
                unit="frame",
            ):
                writer.append_data(frame)
        finally:
            writer.close()
    return output
