"""Actor observations on the robot, built with the training code's own functions (pipeline.deploy.observation).

The robot gives the pelvis IMU orientation and angular velocity and the joint states; the anchor (torso)
orientation comes from the IMU through the waist joints (:class:`AnchorChain` carried in deploy.json). When the
motion starts, the reference anchor orientations are rotated about z so that their heading at frame 0 equals the
robot's, as in training where every episode starts with the robot's heading on the reference's.
"""

from __future__ import annotations

import numpy as np

from pipeline.deploy.contract import DeployContract, ReferenceMotion
from pipeline.deploy.observation import AnchorChain, ObsTermSpec, actor_layout, actor_observation, align_yaw
from pipeline.deploy.state import RobotState
from pipeline.errors import InputError


class Observer:
    """One observation frame (D,) per control step from a RobotState and the reference frame index."""

    def __init__(self, contract: DeployContract, motion: ReferenceMotion, chain: AnchorChain) -> None:
        known = {t.name for t in actor_layout(contract.num_joints)}
        unknown = [t.name for t in contract.obs_terms if t.name not in known]
        if unknown:
            raise InputError("deploy.json", f"observation terms {unknown} are not known to this runtime")
        self.layout = tuple(ObsTermSpec(t.name, t.size, t.scale) for t in contract.obs_terms)
        self.default = contract.default_joint_pos[None]
        self.motion = motion
        self.chain = chain
        self.ref_anchor_quat_w = motion.anchor_quat_w

    def anchor_quat_w(self, state: RobotState) -> np.ndarray:
        """(1, 4) the robot's anchor orientation in the IMU's world frame."""
        return self.chain.anchor_quat(state.imu_quat[None], state.joint_pos[None])

    def start(self, state: RobotState) -> None:
        """Align the reference heading to the robot's (call at the first policy step)."""
        ref = self.motion.anchor_quat_w
        self.ref_anchor_quat_w = align_yaw(ref, self.anchor_quat_w(state), ref[:1])

    def frame(self, state: RobotState, k: int, last_action: np.ndarray) -> np.ndarray:
        m = self.motion
        return actor_observation(
            ref_joint_pos=m.joint_pos[k][None],
            ref_joint_vel=m.joint_vel[k][None],
            ref_anchor_quat_w=self.ref_anchor_quat_w[k][None],
            anchor_quat_w=self.anchor_quat_w(state),
            base_quat_w=state.imu_quat[None],
            base_ang_vel_b=state.imu_gyro[None],
            joint_pos=state.joint_pos[None],
            joint_vel=state.joint_vel[None],
            default_joint_pos=self.default,
            last_action=last_action[None],
            layout=self.layout,
        )[0]
