"""Per-frame quality quantities of a RobotMotion, for overlays that find a bad frame quickly.

The definitions follow :func:`pipeline.retarget.quality.quality` (MuJoCo kinematics and MuJoCo's collision
detection on the robot's collision geoms), but per frame instead of aggregated over the clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from pipeline.robot.model import joint_limits, mujoco_model
from pipeline.robot.motion import RobotMotion
from pipeline.robot.spec import load_robot

NEAR_LIMIT_FRACTION = 0.02  # a joint within 2 % of its range from a limit is "near" it
PENETRATION_BAD_MM = 5.0  # floor penetration deeper than this marks a bad frame
LIMIT_TOLERANCE = 1e-9  # rad


@dataclass(frozen=True)
class FrameFlags:
    """Per-frame quantities of one motion (T frames, N joints).

    Attributes:
        contacts: (T, 2) bool, the human's foot contacts (left, right) carried by the motion.
        foot_pos_w: (T, 2, 3) sole centres of the left and right foot, metres.
        floor_penetration_mm: (T,) deepest robot-floor contact, 0 when none penetrates.
        self_collision_depth_mm: (T,) deepest contact between two robot geoms, 0 when none.
        self_collision_pairs: per frame, the (body, body) name pairs in penetrating contact.
        self_collision_pos_w: per frame, (P, 3) positions of those contacts.
        near_limit: (T, N) bool, joint within ``NEAR_LIMIT_FRACTION`` of its range from a limit.
        beyond_limit: (T, N) bool, joint outside its range.
        bad: (T,) bool, any of: penetration > ``PENETRATION_BAD_MM``, self-collision, a joint beyond a limit.
    """

    contacts: np.ndarray
    foot_pos_w: np.ndarray
    floor_penetration_mm: np.ndarray
    self_collision_depth_mm: np.ndarray
    self_collision_pairs: tuple[tuple[tuple[str, str], ...], ...]
    self_collision_pos_w: tuple[np.ndarray, ...]
    near_limit: np.ndarray
    beyond_limit: np.ndarray
    bad: np.ndarray

    def next_bad(self, frame: int, direction: int = 1) -> int | None:
        """The next bad frame after (direction 1) or before (-1) ``frame``, wrapping around; None if none."""
        bad = np.flatnonzero(self.bad)
        if not len(bad):
            return None
        if direction >= 0:
            later = bad[bad > frame]
            return int(later[0] if len(later) else bad[0])
        earlier = bad[bad < frame]
        return int(earlier[-1] if len(earlier) else bad[-1])


def limit_flags(robot: str, dof_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(near, beyond) (T, N) bool arrays of joints near / beyond their limits."""
    lo, hi = joint_limits(robot)
    margin = NEAR_LIMIT_FRACTION * (hi - lo)
    beyond = (dof_pos < lo - LIMIT_TOLERANCE) | (dof_pos > hi + LIMIT_TOLERANCE)
    near = (dof_pos < lo + margin) | (dof_pos > hi - margin)
    return near, beyond


def frame_flags(motion: RobotMotion, *, progress: Callable[[int, int], None] | None = None) -> FrameFlags:
    """Compute :class:`FrameFlags`; ``progress(done, total)`` is called now and then during the loop."""
    spec = load_robot(motion.robot)
    model = mujoco_model(motion.robot)
    data = mujoco.MjData(model)
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    feet = np.array([model.body(f).id for f in spec.feet], dtype=np.int64)
    sole = (
        np.mean([np.asarray(p) for p in spec.foot_points.values()], axis=0)
        if spec.foot_points
        else np.zeros(3)
    )
    t = motion.num_frames
    qpos = motion.qpos
    foot_pos = np.zeros((t, 2, 3))
    floor_pen = np.zeros(t)
    self_depth = np.zeros(t)
    pairs: list[tuple[tuple[str, str], ...]] = []
    points: list[np.ndarray] = []
    step = max(1, t // 50)
    for i in range(t):
        data.qpos[:] = qpos[i]
        mujoco.mj_kinematics(model, data)
        xmat = data.xmat.reshape(-1, 3, 3)
        foot_pos[i] = data.xpos[feet] + xmat[feet] @ sole
        mujoco.mj_collision(model, data)
        n = data.ncon
        frame_pairs: list[tuple[str, str]] = []
        frame_points = np.zeros((0, 3))
        if n:
            dist = np.array(data.contact.dist[:n])
            geom = np.array(data.contact.geom[:n])
            on_floor = (geom == floor).any(axis=1)
            if on_floor.any():
                floor_pen[i] = max(0.0, float(-dist[on_floor].min()) * 1e3)
            pen = ~on_floor & (dist < 0)
            if pen.any():
                self_depth[i] = float(-dist[pen].min()) * 1e3
                bodies = model.geom_bodyid[geom[pen]]
                frame_pairs = sorted(
                    {tuple(sorted((model.body(a).name, model.body(b).name))) for a, b in bodies}  # type: ignore[misc]
                )
                frame_points = np.array(data.contact.pos[:n])[pen]
        pairs.append(tuple(frame_pairs))
        points.append(frame_points)
        if progress is not None and (i % step == 0 or i == t - 1):
            progress(i + 1, t)
    near, beyond = limit_flags(motion.robot, motion.dof_pos)
    bad = (floor_pen > PENETRATION_BAD_MM) | (self_depth > 0) | beyond.any(axis=1)
    return FrameFlags(
        contacts=np.asarray(motion.contacts, bool),
        foot_pos_w=foot_pos,
        floor_penetration_mm=floor_pen,
        self_collision_depth_mm=self_depth,
        self_collision_pairs=tuple(pairs),
        self_collision_pos_w=tuple(points),
        near_limit=near,
        beyond_limit=beyond,
        bad=bad,
    )
