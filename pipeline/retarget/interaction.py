"""Interaction-mesh retargeting (in the spirit of OmniRetarget) for clips with a Scene.

Per frame, a volumetric mesh (Delaunay tetrahedralisation) is built over the scaled human keypoints and the
object / terrain surface samples near them. The robot's mesh has the robot's keypoints in place of the
human's and the same object points; the step minimises the deformation between the two meshes in Laplacian
coordinates, ``sum_i |L_i V_robot(q) - L_i V_human|^2`` (uniform weights), on top of the kinematic
retargeter's QP (:class:`pipeline.retarget.ik.FrameSolver`: keypoint and orientation tasks, posture,
joint and velocity limits, floor, planted feet, self-collision), and adds hard constraints, linearised at the
current iterate (sequential QP, warm-started from the previous frame):

- no penetration: every collision capsule (sampled at 5 points along its axis) stays outside every object's
  convex hull by ``penetration_margin`` (signed distance + its gradient);
- contacts: while the human touches an object with a hand or a foot (Scene labels), the closest capsule
  sample of the robot's matching body part lies within ``contact_tolerance`` of that object's surface;
- planted feet: the floor plants of the kinematic solver; a foot standing on terrain keeps its sole centre
  where it landed (horizontally, ``plant_tolerance``). A floor contact of a foot over terrain raised above
  the floor is no floor plant (it would hold the foot inside the terrain).

When a frame's QP is infeasible, the contact rows become soft (violated at a cost), then the non-penetration
rows too; only if that fails are they dropped (counted in the motion's source). A frame whose solution still
leaves a capsule sample inside an object (it moved in from beyond the activation distance in one step) gets
the kinematic solver's correction steps. An acceleration cost (``acceleration_weight``) pulls each frame
toward the constant-velocity prediction from the two before it, which lowers jerk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.motion.human import HumanMotion
from pipeline.motion.process import resample
from pipeline.motion.scene import Scene
from pipeline.retarget.config import RetargetConfig
from pipeline.retarget.ik import FREE, FrameSolver, plant_modes
from pipeline.retarget.interaction_geometry import ConvexSet, sample_surface, world_signed_distance
from pipeline.retarget.interaction_scene import fit_terrain_heights, robot_scene
from pipeline.retarget.kinematics import RobotKinematics, robot_kinematics
from pipeline.retarget.qp import INF

METHOD = "interaction mesh (Laplacian deformation) + SDF non-penetration + contact constraints, SQP (daqp)"

FEET = ("left_ankle", "right_ankle")
# Kinematic settings that differ here: the demo data's rate, and a stronger pull toward the previous frame
# (contacts switching on and off otherwise make the joints jerk: 0.05 halves the jerk on the box clips).
KINEMATIC_DEFAULTS: dict[str, Any] = {"fps": 30.0, "previous_weight": 0.05}
CAPSULE_SAMPLES = 5  # points along each collision capsule tested against the objects
# Robot capsules that make contact for a canonical body part (by name prefix).
PART_CAPSULES = {
    "left_wrist": ("left_hand", "left_wrist"),
    "right_wrist": ("right_hand", "right_wrist"),
    "left_ankle": ("left_foot",),
    "right_ankle": ("right_foot",),
}


@dataclass(frozen=True)
class InteractionConfig:
    """Interaction-retargeting parameters (params.yaml ``retarget_interaction:``) on top of ``kinematic``
    (a RetargetConfig whose defaults are overridden by :data:`KINEMATIC_DEFAULTS`).

    laplacian_weight: weight of the Laplacian-coordinate deformation cost [1/m^2].
    object_samples: surface points sampled per object (convex hull, area-weighted, fixed seed).
    neighbourhood: object points within this distance of a human keypoint join the mesh [m].
    max_object_points: at most this many (nearest) object points in the mesh per frame.
    penetration_margin: clearance kept between capsules and objects [m].
    contact_tolerance: a kept contact puts the body part at most this far from the surface [m].
    scale_moving_objects: scale moving objects with the robot (terrain always scales).
    acceleration_weight: cost weight pulling each frame toward the constant-velocity prediction from the two
        previous frames (2 q[t-1] - q[t-2]), i.e. on the second difference of the motion (lowers jerk).
    """

    kinematic: RetargetConfig = field(default_factory=lambda: RetargetConfig(**KINEMATIC_DEFAULTS))
    laplacian_weight: float = 20.0
    object_samples: int = 100
    neighbourhood: float = 0.4
    max_object_points: int = 40
    penetration_margin: float = 0.002
    contact_tolerance: float = 0.01
    scale_moving_objects: bool = False
    acceleration_weight: float = 0.3

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> InteractionConfig:
        """Flat dict: kinematic keys (RetargetConfig) and the keys above; unknown keys are an InputError."""
        d = dict(d or {})
        own = {f.name for f in dataclasses.fields(cls)} - {"kinematic"}
        kin_keys = {f.name for f in dataclasses.fields(RetargetConfig)}
        unknown = sorted(set(d) - own - kin_keys)
        if unknown:
            raise InputError("retarget params", f"unknown keys {unknown} (known: {sorted(own | kin_keys)})")
        kin = {**KINEMATIC_DEFAULTS, **{k: v for k, v in d.items() if k in kin_keys}}
        out: dict[str, Any] = {}
        for k in own & set(d):
            default = getattr(cls, k)
            ok = isinstance(d[k], type(default)) or (isinstance(default, float) and isinstance(d[k], int))
            if not ok or (isinstance(d[k], bool) and not isinstance(default, bool)):
                raise InputError(f"retarget.{k}", f"expected {type(default).__name__}, got {d[k]!r}")
            out[k] = type(default)(d[k])
        return cls(kinematic=RetargetConfig.from_dict(kin), **out)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "kinematic"}
        return {**self.kinematic.to_dict(), **d}


def uniform_laplacian(points: np.ndarray) -> np.ndarray:
    """(n, n) uniform Laplacian L = I - D^-1 A of the Delaunay tetrahedralisation of ``points`` (n, 3)."""
    from scipy.spatial import Delaunay

    n = len(points)
    simplices = Delaunay(points, qhull_options="QJ").simplices
    adj = np.zeros((n, n), bool)
    for i in range(4):
        for j in range(i + 1, 4):
            adj[simplices[:, i], simplices[:, j]] = True
    adj |= adj.T
    deg = adj.sum(axis=1, keepdims=True)
    return np.eye(n) - adj / np.maximum(deg, 1)


class InteractionSolver(FrameSolver):
    """The kinematic frame solver with the interaction terms added to each QP it solves."""

    def __init__(self, kin: RobotKinematics, cfg: InteractionConfig, scene: Scene) -> None:
        super().__init__(kin, cfg.kinematic)
        self.icfg = cfg
        self.scene = scene
        self.sets = [ConvexSet.from_mesh(o.vertices, o.faces) for o in scene.objects]
        self.samples = [sample_surface(o.vertices, o.faces, cfg.object_samples, seed=i)
                        for i, o in enumerate(scene.objects)]  # fmt: skip
        self._base_qp = self.solve_qp
        self.solve_qp = self._solve  # FrameSolver._step calls self.solve_qp(H, g, lb, ub, C, cl, cu)
        caps = kin.capsules
        fr = np.linspace(0.0, 1.0, CAPSULE_SAMPLES)
        self.cap_slot = np.concatenate([caps.slot] * len(fr))
        self.cap_local = np.concatenate([caps.a_local + f * (caps.b_local - caps.a_local) for f in fr])
        self.cap_radius = np.concatenate([caps.radius] * len(fr))
        self.cap_index = np.concatenate([np.arange(len(caps.slot))] * len(fr))
        self.part_points = {
            part: np.flatnonzero(np.isin(self.cap_index, [i for i, n in enumerate(caps.names) if n.startswith(pre)]))
            for part, pre in PART_CAPSULES.items()
        }  # fmt: skip
        self.t = 0
        self.enabled = True
        self.lap: np.ndarray = np.zeros((0, 0))
        self.lap_target = np.zeros((0, 3))
        self.obj_pts = np.zeros((0, 3))
        self.terrain_anchor: dict[int, np.ndarray] = {}  # contact column -> held sole-centre xy
        self.q_before: np.ndarray | None = None  # the solution two frames back (acceleration term)
        self.predicted: np.ndarray | None = None  # this frame's constant-velocity prediction
        self.q_iter = kin.q_default.copy()  # the iterate the current QP is linearised at
        self.istats = {"contact_soft": 0, "penetration_soft": 0, "penetration_drops": 0}

    def prepare(self, t: int, human_kp: np.ndarray) -> None:
        """Set frame ``t``'s interaction mesh from the scaled human keypoints (K, 3) and the scene."""
        self.t = t
        pts = []
        for o, s in zip(self.scene.objects, self.samples, strict=True):
            q = np.broadcast_to(o.quat_w[t], (len(s), 4))
            from pipeline.geometry import quat_rotate

            pts.append(quat_rotate(q, s) + o.pos_w[t])
        allp = np.concatenate(pts)
        dist = np.linalg.norm(allp[:, None] - human_kp[None], axis=2).min(axis=1)
        near = np.flatnonzero(dist < self.icfg.neighbourhood)
        near = near[np.argsort(dist[near], kind="stable")[: self.icfg.max_object_points]]
        self.obj_pts = allp[np.sort(near)]
        verts = np.concatenate([human_kp, self.obj_pts])
        self.lap = uniform_laplacian(verts)
        self.lap_target = self.lap @ verts

    def _terms(self) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Laplacian cost rows (B, r) and constraint blocks [(C, cl, cu)]: penetration, then contacts."""
        kin, fr, cfg = self.kin, self.frame, self.icfg
        k = len(kin.kp_slot)
        kp = fr.points(kin.kp_slot, kin.kp_local)
        jkp = fr.point_jacobians(kin.kp_slot, kp)
        w = np.sqrt(cfg.laplacian_weight)
        r = w * (self.lap[:, :k] @ kp + self.lap[:, k:] @ self.obj_pts - self.lap_target)
        B = w * np.einsum("nk,kiv->niv", self.lap[:, :k], jkp).reshape(-1, kin.nv)
        pts = fr.points(self.cap_slot, self.cap_local)
        act = self.cfg.activation_distance
        pen: list[np.ndarray] = [np.zeros((0, kin.nv))]
        pen_lo: list[np.ndarray] = [np.zeros(0)]
        con: list[np.ndarray] = [np.zeros((0, kin.nv))]
        con_hi: list[np.ndarray] = [np.zeros(0)]
        active = self.scene.contacts[self.t] if self.scene.contacts.size else np.zeros(0, bool)
        for oi, (o, cs) in enumerate(zip(self.scene.objects, self.sets, strict=True)):
            pos, quat = o.pos_w[self.t], o.quat_w[self.t]
            from pipeline.geometry import quat_rotate

            c_w = quat_rotate(quat, cs.center) + pos
            gap = np.linalg.norm(pts - c_w, axis=1) - cs.radius - self.cap_radius
            parts = [self.scene.contact_bodies[c] for c in np.flatnonzero(active)
                     if self.scene.contact_objects[c] == oi]  # fmt: skip
            cand = np.flatnonzero(gap < act)
            want = np.unique(np.concatenate([cand, *[self.part_points[p] for p in parts]])).astype(np.int64)
            if not len(want):
                continue
            d, grad, _ = world_signed_distance(cs, pos, quat, pts[want])
            clear = d - self.cap_radius[want]
            near = np.flatnonzero(clear < act)
            if len(near):
                idx = want[near]
                jp = fr.point_jacobians(self.cap_slot[idx], pts[idx])
                pen.append(np.einsum("pi,piv->pv", grad[near], jp))
                pen_lo.append(cfg.penetration_margin - clear[near])
            for p in parts:
                sel = np.flatnonzero(np.isin(want, self.part_points[p]))
                best = sel[np.argmin(clear[sel])]
                jp = fr.point_jacobians(self.cap_slot[want[best : best + 1]], pts[want[best : best + 1]])
                con.append(grad[best] @ jp[0])
                con_hi.append(np.array([cfg.contact_tolerance - clear[best]]))
        # Feet standing on terrain stay where they landed (sole centre, horizontally).
        for c, xy in self.terrain_anchor.items():
            f = FEET.index(self.scene.contact_bodies[c])
            slot = self.kin.sole_slot[f : f + 1]
            x = fr.points(slot, self.kin.sole_local[f, 1:2])
            jx = fr.point_jacobians(slot, x)[0, :2]
            tol = self.cfg.plant_tolerance
            con.extend([jx, -jx])
            con_hi.extend([xy + tol - x[0, :2], -(xy - tol - x[0, :2])])
        C_pen = np.concatenate(pen)
        C_con = np.vstack(con)
        blocks = [
            (C_pen, np.concatenate(pen_lo), np.full(len(C_pen), INF)),
            (C_con, np.full(len(C_con), -INF), np.concatenate(con_hi)),
        ]
        return B, r.reshape(-1), blocks

    def _penetrates(self, q: np.ndarray) -> bool:
        """The base check (floor, self-collision) and any capsule sample inside an object: a limb that moved
        into an object in one step from beyond the activation distance gets the correction steps too."""
        if super()._penetrates(q):
            return True
        if not self.enabled:
            return False
        from pipeline.geometry import quat_rotate

        pts = self.frame.update(q).points(self.cap_slot, self.cap_local)
        for o, cs in zip(self.scene.objects, self.sets, strict=True):
            pos, quat = o.pos_w[self.t], o.quat_w[self.t]
            near = (
                np.linalg.norm(pts - (quat_rotate(quat, cs.center) + pos), axis=1)
                < cs.radius + self.cap_radius
            )
            if near.any():
                d = world_signed_distance(cs, pos, quat, pts[near])[0]
                if (d < self.cap_radius[near]).any():
                    return True
        return False

    def _step(self, q, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.q_iter = q
        return super()._step(q, *args, **kwargs)

    def solve(self, q_prev, target_pos, target_rot, plant, *, q_init=None, first=False):  # type: ignore[no-untyped-def]
        import pinocchio as pin

        model = self.kin.model
        self.predicted = None
        if self.enabled and not first and self.q_before is not None:
            self.predicted = pin.integrate(model, q_prev, pin.difference(model, self.q_before, q_prev))
        q = super().solve(q_prev, target_pos, target_rot, plant, q_init=q_init, first=first)
        if self.enabled:
            self.q_before = np.array(q_prev if not first else q, copy=True)
            # Anchor a foot where it lands on terrain; release it when the contact ends.
            active = self.scene.contacts[self.t] if self.scene.contacts.size else np.zeros(0, bool)
            for c, part in enumerate(self.scene.contact_bodies):
                on = (
                    bool(active[c])
                    and part in FEET
                    and self.scene.objects[self.scene.contact_objects[c]].static
                    and int(plant[FEET.index(part)]) == FREE  # a floor plant already holds it
                )
                if not on:
                    self.terrain_anchor.pop(c, None)
                elif c not in self.terrain_anchor:
                    f = FEET.index(part)
                    x = self.frame.update(q).points(
                        self.kin.sole_slot[f : f + 1], self.kin.sole_local[f, 1:2]
                    )
                    self.terrain_anchor[c] = x[0, :2].copy()
        return q

    def _solve(self, H, g, lb, ub, C, cl, cu):  # type: ignore[no-untyped-def]
        if not self.enabled:
            return self._base_qp(H, g, lb, ub, C, cl, cu)
        B, r, blocks = self._terms()
        H = H + B.T @ B
        g = g + B.T @ r
        w = self.icfg.acceleration_weight
        if w > 0 and self.predicted is not None:
            import pinocchio as pin

            H[np.diag_indices_from(H)] += w
            g = g + w * pin.difference(self.kin.model, self.predicted, self.q_iter)
        # Infeasible (a contact out of reach, a planted foot against terrain): contacts become soft rows (the
        # solver minimises their violation), then non-penetration too; dropped only if that still fails.
        Cs = np.vstack([C, *[b[0] for b in blocks]])
        lo = np.concatenate([cl, *[b[1] for b in blocks]])
        hi = np.concatenate([cu, *[b[2] for b in blocks]])
        n_base, n_pen = len(C), len(blocks[0][0])
        soft_con = np.zeros(len(Cs), bool)
        soft_con[n_base + n_pen :] = True
        soft_all = soft_con.copy()
        soft_all[n_base : n_base + n_pen] = True
        for soft, stat in ((None, ""), (soft_con, "contact_soft"), (soft_all, "penetration_soft")):
            x, flag = self._base_qp(H, g, lb, ub, Cs, lo, hi, soft=soft)
            if x is not None:
                if stat:
                    self.istats[stat] += 1
                return x, flag
        x, flag = self._base_qp(H, g, lb, ub, C, cl, cu)
        if x is not None:
            self.istats["penetration_drops"] += 1
        return x, flag


RAISED = 0.02  # m: terrain whose top is this far above the floor is not floor


def floor_from_terrain(human: HumanMotion, scene: Scene) -> tuple[HumanMotion, Scene]:
    """Put the floor where the terrain stands, and redo the foot contacts, for a clip with static terrain.

    Floor alignment of a plain clip takes a low percentile of the sole heights as the floor; a climber who
    spends most of the clip on a box gets the box top as the floor (mocap_climb_seq_3: 0.45 m too high).
    Terrain rests on the real floor, so the lowest terrain vertex gives it, unless a terrain piece lies under
    every foot position of the clip: that piece is the ground (a slab reaching below the floor,
    mocap_climb_seq_4) and its top is the floor. Human and scene move together and the floor contacts are
    detected again (pipeline.motion.process.detect_contacts).
    """
    from dataclasses import replace

    from pipeline.motion.process import detect_contacts
    from pipeline.retarget.interaction_scene import top_under

    static = [o for o in scene.objects if o.static]
    if not static:
        return human, scene
    low = min(float(o.vertices_w(0)[:, 2].min()) for o in static)
    # A terrain piece under every foot position of the clip is the ground itself (a slab reaching below the
    # floor, mocap_climb_seq_4): the floor is its top.
    feet = _foot_xy(human).reshape(-1, 2)
    for o in static:
        if np.isfinite(top_under(o, feet)).all():
            low = max(low, float(o.vertices_w(0)[:, 2].max()))
    if abs(low) < 1e-4:
        return human, scene
    dz = np.array([0.0, 0.0, -low])
    human = human.replace(pos_w=human.pos_w + dz)
    human = human.replace(
        contacts=detect_contacts(human), source={**human.source, "floor_from_terrain_m": -low}
    )
    scene = scene.replace(objects=tuple(replace(o, pos_w=o.pos_w + dz) for o in scene.objects))
    return human, scene


def _foot_xy(human: HumanMotion) -> np.ndarray:
    """(T, 2, 2, 2) horizontal positions of the [left, right] x [ankle, toe] joints."""
    idx = [[human.index(f"{side}_{part}") for part in ("ankle", "toe")] for side in ("left", "right")]
    return human.pos_w[:, idx, :2]


def raised_feet(human: HumanMotion, scene: Scene) -> np.ndarray:
    """(T, 2) whether the [left, right] foot (ankle or toe joint) is over terrain whose top is above the floor
    by more than :data:`RAISED`: a foot standing there stands on the terrain, not on the floor, so its floor
    contact (planted at floor height by the kinematic solver) would push it into the terrain."""
    from pipeline.retarget.interaction_scene import support_heights

    return np.asarray((support_heights(scene, _foot_xy(human)) > RAISED).any(axis=2))


ROOT_SCALE_SLACK = 0.1


def _robust_root_scale(human: HumanMotion, tg: dict[str, Any], sigma: float, slack: float) -> float:
    """The root scale for a clip with a scene; moves ``tg["pos_w"]`` in place if it changes.

    The kinematic scaling takes the root scale from the root height in floor contacts. A climber crouches in
    most of those frames, which inflates it (1.08 on mocap_climb_seq_0 against a leg ratio of 0.80); the
    terrain then scales wrongly. When the two differ by more than ``slack`` (ROOT_SCALE_SLACK; 0 when the
    scene has terrain, which must scale with the legs that climb it), the leg ratio is used:
    the targets are rel + scale * root, so they move by (new - old) * root (smoothed like the targets).
    """
    from pipeline.retarget.scaling import gaussian_smooth

    old, leg = float(tg["root_scale"]), float(tg["leg_ratio"])
    if abs(old / leg - 1.0) <= slack:
        return old
    root = gaussian_smooth(human.pos_w[:, human.index("pelvis")], sigma)
    tg["pos_w"] = tg["pos_w"] + (leg - old) * root[:, None, :]
    return leg


def retarget_interaction(
    human: HumanMotion,
    scene: Scene,
    robot: str,
    cfg: InteractionConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, Scene, dict[str, Any]]:
    """Retarget ``human`` interacting with ``scene``. Returns (RobotMotion, the robot's Scene, quality)."""
    import pinocchio as pin

    from pipeline.motion.holosoma import resample_scene
    from pipeline.retarget.core import _contacts, targets
    from pipeline.retarget.interaction_quality import interaction_quality
    from pipeline.robot.model import qpos_pin_to_mj
    from pipeline.robot.motion import RobotMotion

    human.validate()
    scene.validate()
    kcfg = cfg.kinematic
    kin = robot_kinematics(robot)
    human = resample(human, kcfg.fps)
    scene = resample_scene(scene, kcfg.fps, human.num_frames)
    human, scene = floor_from_terrain(human, scene)
    contacts = _contacts(human) & ~raised_feet(human, scene)
    tg = targets(human, kin, kcfg, contacts)
    terrain = any(o.static for o in scene.objects)
    root_scale = _robust_root_scale(human, tg, kcfg.smoothing_sigma, 0.0 if terrain else ROOT_SCALE_SLACK)
    rscene = robot_scene(scene, root_scale, scale_moving=cfg.scale_moving_objects)
    feet = [kin.keypoint_names.index(n) for n in ("left_ankle", "right_ankle", "left_toe", "right_toe")]
    fp = tg["pos_w"][:, feet]
    sole_z = np.minimum(fp[:, :2, 2] - kin.ankle_height, fp[:, 2:, 2])
    rscene, _ = fit_terrain_heights(rscene, sole_z, fp[:, 2:, :2])
    n = human.num_frames
    heel_to_toe = kin.sole_rest_b[2] - kin.sole_rest_b[0]
    plant = plant_modes(contacts, tg["ankle_rot_w"], heel_to_toe, kcfg.plant_roll)
    solver = InteractionSolver(kin, cfg, rscene)
    q = kin.q_default.copy()
    pelvis = kin.keypoint_names.index("pelvis")
    q[:3] = tg["pos_w"][0, pelvis]
    q[3:7] = pin.Quaternion(tg["pelvis_rot_w"][0]).coeffs()
    out = np.empty((n, kin.nq))
    for t in range(n):
        solver.prepare(t, tg["pos_w"][t])
        if t == 0:  # reach the first pose freely, then bring in the scene: a limb starting inside an object
            solver.enabled = False  # would otherwise be pushed out through the nearest face
            q = solver.solve(q, tg["pos_w"][t], tg["rot_w"][t], plant[t], first=True)
            solver.enabled = True
        q = solver.solve(q, tg["pos_w"][t], tg["rot_w"][t], plant[t], first=t == 0)
        out[t] = q
        if progress is not None:
            progress(t + 1, n)
    source = {
        "human_sha256": human.source.get("sha256", ""),
        "human_file": human.source.get("file", ""),
        "method": METHOD,
        "params": cfg.to_dict(),
        "segment_ratios": tg["ratios"],
        "root_scale": round(root_scale, 4),
        "qp_failures": solver.stats["qp_failures"],
        **solver.istats,
    }
    motion = RobotMotion.from_qpos(
        robot,
        qpos_pin_to_mj(out),
        kcfg.fps,
        contacts=contacts,
        keypoint_names=kin.keypoint_names,
        keypoint_pos_w=tg["pos_w"],
        source=source,
    )
    return motion, rscene, interaction_quality(motion, rscene)
