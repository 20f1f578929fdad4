"""Left-right mirror symmetry of the tracking task, for rsl-rl's symmetry data augmentation (``train.ppo.symmetry``).

The mirror is the reflection through the robot's sagittal (x-z) plane, ``M = diag(1, -1, 1)``: left and right
joints and bodies swap; a position, linear velocity or force ``v`` becomes ``M v``; an angular velocity ``w``
becomes ``-M w`` (a pseudovector); a rotation matrix ``R`` becomes ``M R M``; a roll or yaw joint angle changes
sign, a pitch angle (knee, elbow) does not. So every observation group, and the action, is mirrored by a signed
permutation of its entries, built here from the groups' layouts (``actor``: pipeline/deploy/observation.py
``actor_layout``; ``anchor_pos`` and ``critic``: pipeline/sim/task.py, pipeline/sim/terms.py
``critic_observation``). tests/test_sim_symmetry.py checks every group against the task's own observation of a
physically mirrored state.

:func:`augment` is rsl-rl's ``data_augmentation_func``: each mini-batch followed by its mirror image, so every
sample also teaches the policy (and the value function) the mirrored situation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

VEC = (1.0, -1.0, 1.0)  # positions, linear velocities, forces, gravity
PSEUDO = (-1.0, 1.0, -1.0)  # angular velocities


def partner(name: str) -> str:
    """The mirror twin of a joint or body name (itself when it has no side)."""
    for a, b in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(a):
            return b + name[len(a) :]
    return name


def _pair_index(names: Sequence[str], what: str) -> np.ndarray:
    names = list(names)
    missing = [n for n in names if partner(n) not in names]
    if missing:
        raise ValueError(
            f"{what} {missing} have no mirror twin: the robot is not left-right symmetric by name"
        )
    return np.array([names.index(partner(n)) for n in names])


@dataclass(frozen=True)
class SignedPermutation:
    """``x -> x[..., index] * sign``."""

    index: np.ndarray
    sign: np.ndarray

    @staticmethod
    def concat(parts: Sequence[SignedPermutation]) -> SignedPermutation:
        offsets = np.cumsum([0, *(len(p.index) for p in parts)])
        return SignedPermutation(
            np.concatenate([p.index + o for p, o in zip(parts, offsets, strict=False)]),
            np.concatenate([p.sign for p in parts]),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x[..., self.index] * self.sign


def _fixed(signs: Sequence[float]) -> SignedPermutation:
    return SignedPermutation(np.arange(len(signs)), np.asarray(signs, dtype=np.float64))


def _vectors(order: np.ndarray, signs: Sequence[float]) -> SignedPermutation:
    """K stacked 3-vectors (K*3,), item k taken from item ``order[k]``."""
    k = np.arange(3)
    return SignedPermutation((order[:, None] * 3 + k).ravel(), np.tile(signs, len(order)).astype(np.float64))


def _matrix_columns(order: np.ndarray, cols: int) -> SignedPermutation:
    """K stacked (3, cols) row-major blocks of rotation matrices: ``R -> M R M`` (entry (i, j) times
    ``s_i s_j``), item k taken from item ``order[k]``."""
    s = np.asarray(VEC)
    sign = np.outer(s, s[:cols]).ravel()
    size = 3 * cols
    return SignedPermutation(
        (order[:, None] * size + np.arange(size)).ravel(), np.tile(sign, len(order)).astype(np.float64)
    )


def joint_mirror(joint_names: Sequence[str]) -> SignedPermutation:
    """Joints: twin swap; roll and yaw angles change sign."""
    sign = np.array([-1.0 if ("roll" in n or "yaw" in n) else 1.0 for n in joint_names])
    return SignedPermutation(_pair_index(joint_names, "joints"), sign)


class TaskMirror:
    """Signed permutations of each observation group and of the action, for one task's layout."""

    def __init__(
        self,
        joint_names: Sequence[str],
        actor_terms: Sequence[tuple[str, int]],
        tracked: Sequence[str],
        feet: Sequence[str],
        critic_size: int,
    ) -> None:
        joints = joint_mirror(joint_names)
        one = _fixed([1.0])
        actor_parts = {
            "ref_joint_pos": joints,
            "ref_joint_vel": joints,
            "anchor_ori_error": _matrix_columns(np.array([0]), 2),
            "base_ang_vel_b": _fixed(PSEUDO),
            "projected_gravity_b": _fixed(VEC),
            "joint_pos_rel": joints,
            "joint_vel": joints,
            "last_action": joints,
        }
        for name, size in actor_terms:
            if name not in actor_parts or len(actor_parts[name].index) != size:
                raise ValueError(f"actor term '{name}' ({size}) has no mirror rule")
        self.action = joints
        body_order = _pair_index(tracked, "tracked bodies")
        feet_order = _pair_index(feet, "feet")
        # pipeline/sim/terms.py critic_observation, part by part
        critic = SignedPermutation.concat([
            joints, joints,                                   # reference joint positions, velocities
            _fixed(VEC), _matrix_columns(np.array([0]), 2),   # anchor position and orientation error
            _vectors(body_order, VEC),                        # tracked body positions in the anchor frame
            _matrix_columns(body_order, 2),                   # their orientations (2 columns)
            _fixed(VEC), _fixed(PSEUDO), _fixed(VEC),         # base linear, angular velocity, gravity
            joints, joints, joints,                           # joint positions, velocities, last action
            _vectors(feet_order, VEC),                        # foot contact forces
            one, one, _fixed(VEC), one, one, one, one, one,   # randomization: friction .. terrain
            joints,                                           # calibration offsets
        ])  # fmt: skip
        if len(critic.index) != critic_size:
            raise ValueError(
                f"the critic observation has {critic_size} entries, its mirror rule {len(critic.index)}"
            )
        self.groups = {
            "actor": SignedPermutation.concat([actor_parts[name] for name, _ in actor_terms]),
            "anchor_pos": _fixed(VEC),
            "critic": critic,
        }
        self._torch: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def of(cls, env: Any) -> TaskMirror:
        """The mirror of a :class:`pipeline.sim.task.TrackingEnv`."""
        m = env.backend.model
        tracked = [m.body(int(i)).name for i in env.tracked]
        feet = [m.body(int(i)).name for i in env.feet]
        terms = [(t.name, t.size) for t in env.actor_layout]
        mirror = cls(env.robot.joint_names, terms, tracked, feet, env.obs_sizes["critic"])
        # joint_pos_rel and the action are relative to the default pose and scaled per joint: their signed
        # permutation is the mirror only if the pose is its own mirror image and twins share a scale
        joints = mirror.action
        for what, v, mirrored in (
            ("default pose", env.default, joints(env.default)),
            ("action scale", env.action_scale, env.action_scale[joints.index]),
        ):
            bad = np.flatnonzero(~np.isclose(mirrored, v, atol=1e-6))
            if bad.size:
                j = int(bad[0])
                raise ValueError(
                    f"robot '{env.robot.name}': its {what} is not left-right symmetric "
                    f"({env.robot.joint_names[j]} {v[j]:g} vs its twin {mirrored[j]:g}); "
                    "turn off train.ppo.symmetry for it"
                )
        return mirror

    def tensor(self, x: torch.Tensor, group: str) -> torch.Tensor:
        """Mirror a (B, D) tensor of ``group`` (or ``"action"``)."""
        if group not in self._torch:
            p = self.action if group == "action" else self.groups[group]
            self._torch[group] = (torch.as_tensor(p.index), torch.as_tensor(p.sign, dtype=torch.float32))
        index, sign = self._torch[group]
        return x[..., index] * sign.to(x.dtype)


def augment(
    env: Any, obs: Any = None, actions: torch.Tensor | None = None
) -> tuple[Any, torch.Tensor | None]:
    """rsl-rl ``data_augmentation_func``: ``(obs ++ mirror(obs), actions ++ mirror(actions))`` along the batch;
    ``env`` is the :class:`pipeline.learn.vecenv.TrackingVecEnv` (its ``mirror``)."""
    mirror: TaskMirror = env.mirror
    out_obs = None
    if obs is not None:
        mirrored = obs.clone()
        for key in obs.keys():
            mirrored[key] = mirror.tensor(obs[key], key)
        out_obs = torch.cat([obs, mirrored], dim=0)
    out_actions = None if actions is None else torch.cat([actions, mirror.tensor(actions, "action")], dim=0)
    return out_obs, out_actions
