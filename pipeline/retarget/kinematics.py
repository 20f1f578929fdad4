"""The robot as the IK sees it: pinocchio kinematics plus the points, frames and capsules the tasks use.

Every point the tasks need (keypoints, sole centres, capsule end points) is stored as (joint slot, offset in
the joint frame), so one ``computeJointJacobians`` per iteration gives all positions and Jacobians:
a point ``x`` on joint ``i`` moves with ``J_x = mask_i * (J_v + J_w x x)`` where ``J = data.J`` is the
world-frame joint Jacobian (6, nv) and ``mask_i`` keeps the columns of the joints that support ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import mujoco
import numpy as np

from pipeline.errors import InputError
from pipeline.robot.model import joint_limits, mujoco_model, pinocchio_model
from pipeline.robot.spec import load_robot


@dataclass(frozen=True)
class Capsules:
    """Collision geoms as capsules (a sphere is a capsule of zero length). Shapes: (G,)."""

    names: tuple[str, ...]
    slot: np.ndarray  # (G,) joint slot
    a_local: np.ndarray  # (G, 3) segment end points in the joint frame
    b_local: np.ndarray  # (G, 3)
    radius: np.ndarray  # (G,)
    pairs: np.ndarray  # (P, 2) geom index pairs MuJoCo would test for self-collision


@dataclass(frozen=True)
class RobotKinematics:
    """Pinocchio model + task geometry for one robot (built once, shared read-only)."""

    robot: str
    model: object  # pinocchio.Model
    nq: int
    nv: int
    joint_ids: np.ndarray  # (U,) pinocchio joint ids whose placements the tasks read
    mask: np.ndarray  # (U, nv) 1.0 where a column of data.J moves that joint
    keypoint_names: tuple[str, ...]
    kp_slot: np.ndarray  # (K,)
    kp_local: np.ndarray  # (K, 3)
    kp_pos_weight: np.ndarray  # (K,)
    kp_rot_weight: np.ndarray  # (K,)
    kp_rot_local: np.ndarray  # (K, 3, 3) body rotation in its joint frame
    kp_rot_rest_w: np.ndarray  # (K, 3, 3) body world rotation at the zero pose
    rest_pos_w: np.ndarray  # (K, 3) keypoints at the zero pose (root at the origin, upright)
    sole_slot: np.ndarray  # (2,) left, right foot
    sole_local: np.ndarray  # (2, 3, 3) heel, sole centre, toe (robot.yaml foot_points) in the joint frame
    capsules: Capsules
    lower: np.ndarray  # (N,) hinge limits
    upper: np.ndarray
    velocity_limit: np.ndarray  # (N,)
    q_default: np.ndarray  # (nq,) pinocchio configuration of the default pose, root at the origin
    sole_rest_b: np.ndarray  # (3, 3) heel, centre, toe in the foot body frame
    ankle_height: float  # ankle keypoint height above the sole centre with the foot flat, metres

    def new_data(self):  # -> pinocchio.Data
        return self.model.createData()  # type: ignore[attr-defined]


def _frame_in_joint(pmodel, body: str) -> tuple[int, np.ndarray, np.ndarray]:
    """(joint id, rotation, translation) of a body's frame relative to its parent joint."""
    fid = pmodel.getFrameId(body)
    if fid >= pmodel.nframes:
        raise InputError(body, "no such body in the pinocchio model")
    f = pmodel.frames[fid]
    return int(f.parentJoint), np.array(f.placement.rotation), np.array(f.placement.translation)


def _capsules(robot: str, pmodel) -> tuple[Capsules, list[int]]:
    model = mujoco_model(robot)
    names, a_loc, b_loc, rad, gids = [], [], [], [], []
    joints: list[int] = []
    for g in range(model.ngeom):
        if model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0:
            continue
        if model.geom_bodyid[g] == 0:
            continue  # the floor and anything else on the world body
        gtype = model.geom_type[g]
        size = model.geom_size[g]
        if gtype == mujoco.mjtGeom.mjGEOM_SPHERE:
            half = 0.0
        elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
            half = float(size[1])
        else:
            raise InputError(model.geom(g).name, "only sphere and capsule collision geoms are supported")
        body = model.body(model.geom_bodyid[g]).name
        jid, r_bj, t_bj = _frame_in_joint(pmodel, body)
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, model.geom_quat[g])
        axis = mat.reshape(3, 3)[:, 2]
        ends_b = np.stack([model.geom_pos[g] - half * axis, model.geom_pos[g] + half * axis])
        ends_j = ends_b @ r_bj.T + t_bj
        joints.append(jid)
        names.append(model.geom(g).name)
        a_loc.append(ends_j[0])
        b_loc.append(ends_j[1])
        rad.append(float(size[0]))
        gids.append(g)
    # The pairs MuJoCo's collision filter lets through: compatible masks, different bodies, not parent/child
    # (filterparent), not excluded.
    excluded = {int(s) for s in model.exclude_signature[: model.nexclude]}
    pairs = []
    for i in range(len(gids)):
        for j in range(i + 1, len(gids)):
            gi, gj = gids[i], gids[j]
            bi, bj = int(model.geom_bodyid[gi]), int(model.geom_bodyid[gj])
            if bi == bj:
                continue
            if not (
                (model.geom_contype[gi] & model.geom_conaffinity[gj])
                or (model.geom_contype[gj] & model.geom_conaffinity[gi])
            ):
                continue
            if model.body_parentid[bi] == bj or model.body_parentid[bj] == bi:
                continue
            lo, hi = min(bi, bj), max(bi, bj)
            if (lo << 16) + hi in excluded:
                continue
            pairs.append((i, j))
    caps = Capsules(
        names=tuple(names),
        slot=np.zeros(len(names), dtype=np.int64),
        a_local=np.array(a_loc),
        b_local=np.array(b_loc),
        radius=np.array(rad),
        pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2),
    )
    return caps, joints


@cache
def robot_kinematics(robot: str) -> RobotKinematics:
    """Build (once per process) the IK view of ``robot``."""
    import pinocchio as pin

    spec = load_robot(robot)
    pm = pinocchio_model(robot)
    kp_joint, kp_local, kp_rot_local = [], [], []
    for kp in spec.keypoints:
        jid, r_bj, t_bj = _frame_in_joint(pm, kp.body)
        kp_joint.append(jid)
        kp_local.append(r_bj @ kp.offset + t_bj)
        kp_rot_local.append(r_bj)
    sole_joint, sole_local = [], []
    heel, toe = np.asarray(spec.foot_points["heel"]), np.asarray(spec.foot_points["toe"])
    sole_b = np.stack([heel, 0.5 * (heel + toe), toe])
    for foot in spec.feet:
        jid, r_bj, t_bj = _frame_in_joint(pm, foot)
        sole_joint.append(jid)
        sole_local.append(sole_b @ r_bj.T + t_bj)
    caps, cap_joints = _capsules(robot, pm)

    used = sorted(set(kp_joint) | set(sole_joint) | set(cap_joints))
    slot_of = {j: s for s, j in enumerate(used)}
    mask = np.zeros((len(used), pm.nv))
    for s, j in enumerate(used):
        for sj in pm.supports[j]:
            if sj == 0:
                continue
            iv, nvj = pm.joints[sj].idx_v, pm.joints[sj].nv
            mask[s, iv : iv + nvj] = 1.0
    caps = Capsules(
        names=caps.names,
        slot=np.array([slot_of[j] for j in cap_joints], dtype=np.int64),
        a_local=caps.a_local,
        b_local=caps.b_local,
        radius=caps.radius,
        pairs=caps.pairs,
    )

    # Zero pose, root at the origin: the robot's rest keypoints and body rotations.
    data = pm.createData()
    q0 = pin.neutral(pm)
    pin.forwardKinematics(pm, data, q0)
    rest_pos, rest_rot = [], []
    for j, loc, rl in zip(kp_joint, kp_local, kp_rot_local, strict=True):
        m = data.oMi[j]
        rest_pos.append(m.rotation @ loc + m.translation)
        rest_rot.append(m.rotation @ rl)
    ankle = [k.name for k in spec.keypoints].index("left_ankle")
    m = data.oMi[sole_joint[0]]
    sole_rest_z = float((m.rotation @ sole_local[0][1] + m.translation)[2])
    lower, upper = joint_limits(robot)
    q_def = q0.copy()
    q_def[7:] = np.clip(spec.default_pos, lower, upper)
    return RobotKinematics(
        robot=robot,
        model=pm,
        nq=pm.nq,
        nv=pm.nv,
        joint_ids=np.array(used, dtype=np.int64),
        mask=mask,
        keypoint_names=tuple(k.name for k in spec.keypoints),
        kp_slot=np.array([slot_of[j] for j in kp_joint], dtype=np.int64),
        kp_local=np.array(kp_local),
        kp_pos_weight=np.array([k.position_weight for k in spec.keypoints]),
        kp_rot_weight=np.array([k.orientation_weight for k in spec.keypoints]),
        kp_rot_local=np.array(kp_rot_local),
        kp_rot_rest_w=np.array(rest_rot),
        rest_pos_w=np.array(rest_pos),
        sole_slot=np.array([slot_of[j] for j in sole_joint], dtype=np.int64),
        sole_local=np.array(sole_local),
        capsules=caps,
        lower=lower,
        upper=upper,
        velocity_limit=spec.velocity_limit.copy(),
        q_default=q_def,
        sole_rest_b=sole_b,
        ankle_height=float(rest_pos[ankle][2] - sole_rest_z),
    )


def kinematic_tree(pmodel) -> tuple[np.ndarray, ...]:
    """The arrays :func:`pipeline.retarget.kernels.forward_kinematics` reads from a pinocchio model of a free
    flyer and revolute joints: parent (nj,), axis code (nj,), joint placements (nj, 3, 3) and (nj, 3), idx_q,
    idx_v (nj,)."""
    from pipeline.retarget.kernels import FREE_FLYER

    codes = {"JointModelFreeFlyer": FREE_FLYER, "JointModelRX": 0, "JointModelRY": 1, "JointModelRZ": 2}
    nj = pmodel.njoints
    axis = np.zeros(nj, dtype=np.int64)
    for i in range(1, nj):
        name = pmodel.joints[i].shortname()
        if name not in codes:
            raise InputError(str(pmodel.names[i]), f"joint type {name} is not supported by the IK kinematics")
        axis[i] = codes[name]
    return (
        np.array(list(pmodel.parents), dtype=np.int64),
        axis,
        np.array([m.rotation for m in pmodel.jointPlacements]),
        np.array([m.translation for m in pmodel.jointPlacements]),
        np.array([j.idx_q if i else 0 for i, j in enumerate(pmodel.joints)], dtype=np.int64),
        np.array([j.idx_v if i else 0 for i, j in enumerate(pmodel.joints)], dtype=np.int64),
    )


class Frame:
    """Kinematic state at one configuration: joint placements and the world Jacobian (after :meth:`update`).

    The forward kinematics is the compiled :func:`pipeline.retarget.kernels.forward_kinematics` (the same
    numbers as pinocchio's ``computeJointJacobians``, which the tests check).
    """

    def __init__(self, kin: RobotKinematics) -> None:
        self.kin = kin
        self.data = kin.new_data()
        self._ids = np.asarray(kin.joint_ids, dtype=np.int64)
        self.tree = kinematic_tree(kin.model)
        nj = len(self.tree[0])
        self.rot_all = np.zeros((nj, 3, 3))  # every joint's world rotation
        self.pos_all = np.zeros((nj, 3))
        self.pos = np.zeros((len(self._ids), 3))  # (U, 3) joint origins, world
        self.rot = np.zeros((len(self._ids), 3, 3))  # (U, 3, 3) joint rotations, world
        self.J = np.zeros((6, kin.nv))  # world-frame Jacobian columns [v; w] at the world origin
        self._q: np.ndarray | None = None  # configuration of the last update

    def update(self, q: np.ndarray) -> Frame:
        """Recompute at ``q`` (nq,); a no-op when ``q`` equals the configuration of the last update."""
        from pipeline.retarget.kernels import forward_kinematics

        if self._q is not None and bool((q == self._q).all()):
            return self
        self._q = np.array(q, dtype=float)
        parent, axis, jp_rot, jp_pos, idx_q, idx_v = self.tree
        forward_kinematics(
            self._q, parent, axis, jp_rot, jp_pos, idx_q, idx_v, self.rot_all, self.pos_all, self.J
        )
        self.pos = self.pos_all[self._ids]
        self.rot = self.rot_all[self._ids]
        return self

    def points(self, slot: np.ndarray, local: np.ndarray) -> np.ndarray:
        """(P, 3) world positions of points given by joint slot (P,) and joint-frame offset (P, 3)."""
        return np.einsum("pij,pj->pi", self.rot[slot], local) + self.pos[slot]

    def point_jacobians(
        self, slot: np.ndarray, x_w: np.ndarray, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """(P, 3, nv) Jacobians of world points ``x_w`` (P, 3) rigidly attached to joint slots ``slot``.

        J_x = J_v + J_w x x = J_v - [x]_x J_w, one batched matmul. ``mask``: optional precomputed
        ``kin.mask[slot][:, None, :]`` (P, 1, nv) for callers that reuse the same slots every iteration.
        """
        J = self.J
        n = x_w.shape[0]
        skew = np.zeros((n, 9))  # [x]_x^T = -[x]_x, so this is J_w's cross with x: (w x x) = [x]_x^T w
        skew[:, 1] = x_w[:, 2]
        skew[:, 2] = -x_w[:, 1]
        skew[:, 3] = -x_w[:, 2]
        skew[:, 5] = x_w[:, 0]
        skew[:, 6] = x_w[:, 1]
        skew[:, 7] = -x_w[:, 0]
        out = J[:3] + skew.reshape(n, 3, 3) @ J[3:]
        out *= self.kin.mask[slot][:, None, :] if mask is None else mask
        return out

    def point_z_jacobians(self, slot: np.ndarray, x_w: np.ndarray) -> np.ndarray:
        """(P, nv) the z rows of :meth:`point_jacobians` only (cheaper)."""
        J = self.J
        return (J[2] + J[3] * x_w[:, 1:2] - J[4] * x_w[:, 0:1]) * self.kin.mask[slot]

    def point_normal_jacobians(self, slot: np.ndarray, x_w: np.ndarray, n_w: np.ndarray) -> np.ndarray:
        """(P, nv) ``n_p^T J_p``: the rows of :meth:`point_jacobians` projected on directions ``n_w`` (P, 3).

        Uses n^T (J_v + J_w x x) = n^T J_v + (x cross n)^T J_w, without forming the (P, 3, nv) Jacobians.
        """
        J = self.J
        x, n = x_w, n_w
        xn = np.empty_like(x)  # x cross n (np.cross is slow for small arrays)
        xn[:, 0] = x[:, 1] * n[:, 2] - x[:, 2] * n[:, 1]
        xn[:, 1] = x[:, 2] * n[:, 0] - x[:, 0] * n[:, 2]
        xn[:, 2] = x[:, 0] * n[:, 1] - x[:, 1] * n[:, 0]
        return (n @ J[:3] + xn @ J[3:]) * self.kin.mask[slot]

    def rotation_jacobians(self, slot: np.ndarray) -> np.ndarray:
        """(O, 3, nv) world angular-velocity Jacobians of joint slots ``slot``."""
        return self.J[3:][None, :, :] * self.kin.mask[slot][:, None, :]
