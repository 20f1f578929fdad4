"""AMASS / SMPL-X reader through the real smplx loading code, on a synthetic model file written here.

The synthetic model has the real SMPL-X layout (10475 vertices, 55 joints, the documented npz keys) but a
made-up body: the first 55 vertices are the joints (a one-hot joint regressor), every vertex follows exactly
one joint, and there are no pose correctives. Its forward kinematics can then be computed independently here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.errors import InputError
from pipeline.motion import read_clip
from pipeline.motion.amass import BODY_PARENTS, KEYPOINT_INDEX, read_amass
from pipeline.motion.human import CANONICAL_JOINTS
from pipeline.motion.process import facing_yaw

pytest.importorskip("smplx")

V = 10475
NUM_JOINTS = 55
NUM_SHAPE = 20  # 10 shape + 10 expression directions (smplx's "only 10 shape and 10 expression" mode)

# T-pose, y-up, facing +z, left at +x (the SMPL-X model frame), metres.
BODY_REST = np.array(
    [
        [0.0, 0.0, 0.0], [0.09, -0.08, 0.0], [-0.09, -0.08, 0.0], [0.0, 0.1, 0.0],
        [0.1, -0.48, 0.0], [-0.1, -0.48, 0.0], [0.0, 0.23, 0.0], [0.1, -0.88, -0.02],
        [-0.1, -0.88, -0.02], [0.0, 0.29, 0.0], [0.11, -0.93, 0.1], [-0.11, -0.93, 0.1],
        [0.0, 0.5, 0.0], [0.07, 0.42, 0.0], [-0.07, 0.42, 0.0], [0.0, 0.6, 0.02],
        [0.18, 0.44, 0.0], [-0.18, 0.44, 0.0], [0.44, 0.44, 0.0], [-0.44, 0.44, 0.0],
        [0.7, 0.44, 0.0], [-0.7, 0.44, 0.0],
    ]
)  # fmt: skip


def _parents() -> np.ndarray:
    parents = [*BODY_PARENTS, 15, 15, 15]  # jaw, eyes
    for wrist in (20, 21):  # 5 fingers x 3 joints per hand
        for _ in range(5):
            parents += [wrist, len(parents), len(parents) + 1]
    return np.array(parents)


def write_model(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    parents = _parents()
    joints = np.zeros((NUM_JOINTS, 3))
    joints[:22] = BODY_REST
    joints[22:25] = [[0.0, 0.55, 0.05], [0.03, 0.65, 0.08], [-0.03, 0.65, 0.08]]
    for j in range(25, NUM_JOINTS):
        side = 1.0 if j < 40 else -1.0
        joints[j] = joints[parents[j]] + [side * 0.03, 0.0, 0.01 * ((j - 25) % 15 // 3 - 2)]
    v = np.empty((V, 3))
    v[:NUM_JOINTS] = joints
    owner = rng.integers(0, 22, V)
    owner[:NUM_JOINTS] = np.arange(NUM_JOINTS)
    v[NUM_JOINTS:] = joints[owner[NUM_JOINTS:]] + rng.normal(0.0, 0.02, (V - NUM_JOINTS, 3))
    v[NUM_JOINTS:, 1] = v[NUM_JOINTS:, 1].clip(-0.96, 0.78)
    v[NUM_JOINTS] = [0.0, 0.8, 0.0]  # top of the head
    owner[NUM_JOINTS] = 15
    v[NUM_JOINTS + 1 : NUM_JOINTS + 3] = [[0.11, -0.97, 0.12], [-0.11, -0.97, 0.12]]  # soles
    owner[NUM_JOINTS + 1 : NUM_JOINTS + 3] = [10, 11]
    weights = np.zeros((V, NUM_JOINTS))
    weights[np.arange(V), owner] = 1.0
    regressor = np.zeros((NUM_JOINTS, V))
    regressor[np.arange(NUM_JOINTS), np.arange(NUM_JOINTS)] = 1.0
    np.savez_compressed(
        path,
        v_template=v,
        shapedirs=rng.normal(0.0, 0.003, (V, 3, NUM_SHAPE)),
        posedirs=np.zeros((V, 3, (NUM_JOINTS - 1) * 9), dtype=np.float32),
        J_regressor=regressor,
        weights=weights,
        kintree_table=np.stack([np.where(parents < 0, 4294967295, parents), np.arange(NUM_JOINTS)]),
        f=np.array([[0, 1, 2], [1, 2, 3]], dtype=np.int64),
        lmk_faces_idx=np.zeros(51, dtype=np.int64),
        lmk_bary_coords=np.full((51, 3), 1.0 / 3.0),
        hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45),
        hands_meanl=np.zeros(45),
        hands_meanr=np.zeros(45),
    )


@pytest.fixture(scope="module")
def body_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("body_model")
    write_model(d / "SMPLX_NEUTRAL.npz")
    return d


UPRIGHT = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # model axes -> z-up, facing +x


def write_clip(path: Path, t: int = 90, fps: float = 60.0, yaw: float = np.pi / 2, **extra: object) -> dict:
    """A subject facing ``yaw`` walking-ish forward: knees and hips swing, arms lowered from the T-pose."""
    s = np.arange(t) / fps
    root = Rotation.from_euler("z", yaw) * Rotation.from_matrix(UPRIGHT)
    body = np.zeros((t, 21, 3))
    moving = np.clip(s - 0.5, 0.0, None)  # stands still for 0.5 s, then moves
    swing = 0.5 * np.sin(2 * np.pi * moving)
    body[:, 0, 0] = swing  # left hip about model x (flexion)
    body[:, 1, 0] = -swing
    body[:, 3, 0] = np.clip(-swing, 0, None) * 1.5  # left knee
    body[:, 4, 0] = np.clip(swing, 0, None) * 1.5
    body[:, 15, 2] = -1.3  # left shoulder about model z: arm down
    body[:, 16, 2] = 1.3
    trans = np.stack([np.cos(yaw) * 1.2 * moving, np.sin(yaw) * 1.2 * moving, 0.95 + 0.0 * s], axis=1)
    d = {
        "trans": trans,
        "root_orient": np.tile(root.as_rotvec(), (t, 1)),
        "pose_body": body.reshape(t, 63),
        "betas": np.array([0.5, -0.3, 0.2, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]),
        "gender": np.array("neutral"),
        "mocap_frame_rate": np.array(fps),
        **extra,
    }
    np.savez(path, **d)
    return d


def reference_fk(model_file: Path, clip: dict) -> np.ndarray:
    """Independent FK of the synthetic model: (T, 22, 3) joint positions in the world."""
    m = np.load(model_file)
    nb = 10
    shaped = m["v_template"] + np.einsum("vcs,s->vc", m["shapedirs"][:, :, :nb], clip["betas"][:nb])
    rest = shaped[:22]
    t = clip["trans"].shape[0]
    local = (
        Rotation.from_rotvec(
            np.concatenate([clip["root_orient"][:, None], clip["pose_body"].reshape(t, 21, 3)], 1).reshape(
                -1, 3
            )
        )
        .as_matrix()
        .reshape(t, 22, 3, 3)
    )
    rot = np.empty_like(local)
    pos = np.empty((t, 22, 3))
    for j, p in enumerate(BODY_PARENTS):
        if p < 0:
            rot[:, j] = local[:, j]
            pos[:, j] = rest[j] + clip["trans"]
        else:
            rot[:, j] = rot[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", rot[:, p], rest[j] - rest[p])
    return pos


def test_amass_joints_match_independent_fk(body_model: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "walk.npz")
    m = read_amass(tmp_path / "walk.npz", body_model=body_model)
    ref = reference_fk(body_model / "SMPLX_NEUTRAL.npz", clip)
    sel = [KEYPOINT_INDEX[n] for n in CANONICAL_JOINTS]
    np.testing.assert_allclose(m.pos_w, ref[:, sel], atol=2e-5)  # smplx runs in float32
    assert m.source["body_model"] == "SMPLX_NEUTRAL.npz" and m.source["surface_model"] == "smplx"
    assert m.subject_height == pytest.approx(0.8 + 0.97, abs=0.03)


def test_amass_processed_and_rest_pose(body_model: Path, tmp_path: Path) -> None:
    write_clip(tmp_path / "walk.npz")
    m = read_clip(tmp_path / "walk.npz", body_model=body_model, fps=30)
    assert m.fps == 30.0 and m.num_frames == 45
    assert abs(facing_yaw(m)) < 1e-9  # the clip faced +y; now +x
    # walking forward along +x after the turn
    assert m.pos_w[-1, 0, 0] - m.pos_w[0, 0, 0] > 0.8
    assert abs(m.pos_w[-1, 0, 1] - m.pos_w[0, 0, 1]) < 0.05
    # arms lowered 1.3 rad from the T-pose: near the canonical (arms down) rest, i.e. rotation of ~0.27 rad
    ang = 2 * np.arccos(np.clip(np.abs(m.quat_w[:, m.index("left_shoulder"), 0]), 0, 1))
    np.testing.assert_allclose(ang, np.pi / 2 - 1.3, atol=0.02)
    # pelvis upright and facing +x at frame 0: identity
    assert abs(m.quat_w[0, 0, 0]) == pytest.approx(1.0, abs=1e-4)
    assert m.contacts[:12].all()  # standing still on both feet
    assert not m.contacts[-10:].all()  # the synthetic legs swing while the body glides: no planted feet


def test_amass_bad_input(body_model: Path, tmp_path: Path) -> None:
    f = tmp_path / "a.npz"
    write_clip(f)
    with pytest.raises(InputError, match="--body-model"):
        read_clip(f)
    with pytest.raises(InputError, match="no SMPLX_NEUTRAL model file"):
        read_clip(f, body_model=tmp_path)
    write_clip(f, gender=np.array("male"))
    with pytest.raises(InputError, match="no SMPLX_MALE or SMPLX_NEUTRAL model file"):
        read_clip(f, body_model=tmp_path)
    assert read_amass(f, body_model=body_model).source["gender"] == "male"  # falls back to the neutral model
    clip = write_clip(f)
    clip["trans"][3, 1] = np.nan
    np.savez(f, **clip)
    with pytest.raises(InputError, match="'trans' has NaN"):
        read_clip(f, body_model=body_model)
    np.savez(f, trans=np.zeros((0, 3)), poses=np.zeros((0, 165)), mocap_framerate=np.array(30.0))
    with pytest.raises(InputError, match="zero frames"):
        read_clip(f, body_model=body_model)
    np.savez(f, trans=np.zeros((4, 3)), mocap_framerate=np.array(30.0))
    with pytest.raises(InputError, match="poses"):
        read_clip(f, body_model=body_model)
