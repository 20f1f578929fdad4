"""Teacher -> student: history buffer, rsl-rl distillation on a tiny problem, RMA, privileged-input exclusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.deploy.policy import ObsHistory
from pipeline.errors import InputError
from pipeline.learn.distill import config_from_dict, distill, make_env, policy_from_mlp_model
from pipeline.learn.history_env import HistoryEnv
from pipeline.learn.student import HistoryBuffer, load_student
from tests.distill_fixtures import TINY_DISTILL, save_teacher, swaying_motion, tiny_train_config


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("distill")
    cfg = tiny_train_config()
    motion = swaying_motion()
    teacher = save_teacher(cfg, motion, tmp / "teacher.pt")
    return {"tmp": tmp, "cfg": cfg, "motion": motion, "teacher": teacher}


@pytest.fixture(scope="module")
def students(problem: dict) -> dict:
    """A DAgger student (20 iterations) and an RMA student (brief), with their summaries."""
    p = problem
    out = {}
    dcfg = config_from_dict({**TINY_DISTILL, "max_iterations": 20})
    out["distill"] = distill(
        dcfg, p["cfg"], [p["motion"]], ["sway"], p["teacher"], p["tmp"] / "s", progress=False
    )
    rcfg = config_from_dict(
        {**TINY_DISTILL, "method": "rma", "rma": {"teacher_iterations": 2, "adapt_iterations": 6}}
    )
    out["rma"] = distill(
        rcfg, p["cfg"], [p["motion"]], ["sway"], p["teacher"], p["tmp"] / "r", progress=False
    )
    return out


def test_history_buffer_matches_the_deploy_runtime_history():
    rng = np.random.default_rng(0)
    buf = HistoryBuffer(num_envs=1, history=4, size=3)
    ref = ObsHistory(4, 3)
    for t in range(10):
        frame = rng.normal(size=(1, 3)).astype(np.float32)
        np.testing.assert_allclose(buf.push(frame, np.array([t == 0]))[0], ref.push(frame[0]), rtol=1e-6)
    # a reset env restarts with its first frame repeated, the others keep their history
    buf2 = HistoryBuffer(2, 3, 2)
    buf2.push(np.array([[1.0, 1.0], [2.0, 2.0]]))
    out = buf2.push(np.array([[3.0, 3.0], [4.0, 4.0]]), np.array([False, True])).reshape(2, 3, 2)
    np.testing.assert_array_equal(out[0, :, 0], [1.0, 1.0, 3.0])
    np.testing.assert_array_equal(out[1, :, 0], [4.0, 4.0, 4.0])


def test_distillation_loss_falls_and_the_student_loads(students: dict, problem: dict):
    s = students["distill"]
    assert s["iterations"] == 20
    assert s["behavior_loss_last"] < 0.6 * s["behavior_loss_first"], s
    student = load_student(problem["tmp"] / "s")
    assert (student.method, student.history) == ("distill", 3)
    d = student.obs_size
    obs = np.random.default_rng(1).normal(size=(5, 3 * d))
    act = student.act(obs)
    assert act.shape == (5, 29) and np.isfinite(act).all()
    # what export_bundle wraps: the actor on the raw history (normalizer None: it normalizes inside)
    assert student.normalizer is None
    with torch.no_grad():
        x = torch.as_tensor(obs, dtype=torch.float32)
        np.testing.assert_allclose(student.actor(x).numpy(), act, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("residual", [False, True])
def test_plain_student_equals_the_rsl_rl_model_it_came_from(residual: bool):
    from tensordict import TensorDict

    from pipeline.learn.models import ResidualMLPModel

    torch.manual_seed(0)
    obs = TensorDict({"student": torch.randn(64, 12)}, batch_size=[64])
    ff = {"ff_offset": [0.1, -0.2, 0.3, 0.0, 0.5], "ff_scale": [0.5, 1.0, 2.0, 0.25, 1.5]} if residual else {}
    model = ResidualMLPModel(obs, {"student": ["student"]}, "student", 5, hidden_dims=[16, 8],
                             obs_normalization=True, **ff, ff_start=6)  # fmt: skip
    model.train()
    model.update_normalization(TensorDict({"student": 3 + 2 * torch.randn(256, 12)}, batch_size=[256]))
    model.eval()
    policy = policy_from_mlp_model(model, history=2, obs_size=6, arch={"hidden": [16, 8], **ff})
    with torch.no_grad():
        np.testing.assert_allclose(policy(obs["student"]).numpy(), model(obs).numpy(), rtol=1e-5, atol=1e-6)
        # the same model class as the teacher: its standalone export reads the feed-forward at ff_start too
        np.testing.assert_allclose(
            model.deploy_module()(obs["student"]).numpy(), model(obs).numpy(), atol=1e-6
        )


def test_rma_path_trains_and_loads(students: dict, problem: dict):
    s = students["rma"]
    assert s["method"] == "rma" and s["adapt_iterations"] == 6
    assert np.isfinite(s["latent_loss_last"])
    student = load_student(problem["tmp"] / "r")
    assert student.method == "rma" and student.normalizer is None
    act = student.act(np.zeros((2, 3 * student.obs_size)))
    assert act.shape == (2, 29) and np.isfinite(act).all()


def _privileged_perturbations(task) -> dict:  # task: TrackingEnv
    be, p = task.backend, task.randomizer.params

    def base_lin_vel() -> None:
        be.qvel[:, :3] += np.array([0.7, -0.4, 0.2])

    def root_position() -> None:
        be.qpos[:, :2] += np.array([0.3, -0.2])
        be.forward()

    def contact_forces() -> None:  # the batch's own array is read-only: substitute a perturbed copy
        forces = be.cfrc_ext.copy()
        forces[:, task.feet, 3:] += 50.0
        be.cfrc_ext = forces

    def friction() -> None:
        p.friction[:] = p.friction + 0.3

    def mass_scale() -> None:
        p.mass_scale[:] = p.mass_scale * 1.2

    def com_offset() -> None:
        p.com_offset[:] = p.com_offset + 0.02

    def gains() -> None:
        p.kp_scale[:] = p.kp_scale * 1.3
        p.motor_strength[:] = p.motor_strength * 0.8

    def latency() -> None:
        p.latency_steps[:] = p.latency_steps + 1

    return {f.__name__: f for f in (base_lin_vel, root_position, contact_forces, friction, mass_scale,
                                    com_offset, gains, latency)}  # fmt: skip


@pytest.mark.parametrize("method", ["distill", "rma"])
def test_student_action_ignores_every_privileged_quantity(students: dict, problem: dict, method: str):
    """Each privileged quantity is perturbed in the simulator state (or the randomized parameters): the critic
    observation changes, the student's input and action do not."""
    p = problem
    student = load_student(p["tmp"] / ("s" if method == "distill" else "r"))
    dcfg = config_from_dict({**TINY_DISTILL, "method": method})
    no_noise = tiny_train_config(randomization={"obs_noise": {"enabled": False, "range": [0.0, 1.0]}})
    vec = make_env(dcfg, no_noise, [p["motion"]], ["sway"])
    henv: HistoryEnv = vec.env  # type: ignore[assignment]
    task = henv.env
    rng = np.random.default_rng(0)
    for _ in range(3):
        henv.step(0.1 * rng.normal(size=(task.num_envs, task.num_actions)))
    be = task.backend
    qpos, qvel, cfrc = be.qpos.copy(), be.qvel.copy(), be.cfrc_ext
    params0 = {k: np.copy(v) for k, v in vars(task.randomizer.params).items()}
    hist0 = henv.buffer.buf.copy()
    ref = task._reference()
    base = task._observe(ref)
    base_student = henv._extend(base, None)["student"]
    base_action = student.act(base_student)
    for name, perturb in _privileged_perturbations(task).items():
        be.qpos[:], be.qvel[:] = qpos, qvel
        be.forward()
        be.cfrc_ext = cfrc
        for k, v in params0.items():
            getattr(task.randomizer.params, k)[...] = v
        henv.buffer.buf[:] = hist0
        perturb()
        obs = henv._extend(task._observe(ref), None)
        assert not np.allclose(obs["critic"], base["critic"]), f"{name}: the critic should see it"
        if name == "root_position":  # the teacher's actor sees where it is; the student does not
            assert not np.allclose(obs["anchor_pos"], base["anchor_pos"])
        np.testing.assert_array_equal(obs["student"], base_student, err_msg=name)
        np.testing.assert_array_equal(student.act(obs["student"]), base_action, err_msg=name)


def test_bad_distill_params_are_input_errors():
    with pytest.raises(InputError, match=r"distill\.method"):
        config_from_dict({"method": "bc"})
    with pytest.raises(InputError, match="unknown key"):
        config_from_dict({"histroy": 4})
    with pytest.raises(InputError, match="gradient_length"):
        config_from_dict({"num_steps_per_env": 24, "num_learning_epochs": 1, "gradient_length": 7})


def test_missing_teacher_is_an_input_error(problem: dict, tmp_path: Path):
    dcfg = config_from_dict({**TINY_DISTILL, "max_iterations": 1})
    with pytest.raises(InputError, match="train stage"):
        distill(
            dcfg,
            problem["cfg"],
            [problem["motion"]],
            ["sway"],
            tmp_path / "none.pt",
            tmp_path,
            progress=False,
        )


def test_ppo_finetune_of_the_student_runs(problem: dict):
    p = problem
    dcfg = config_from_dict({**TINY_DISTILL, "max_iterations": 2, "finetune_iterations": 3})
    s = distill(dcfg, p["cfg"], [p["motion"]], ["sway"], p["teacher"], p["tmp"] / "ft", progress=False)
    assert s["finetune_iterations"] == 3
    act = load_student(p["tmp"] / "ft").act(np.zeros((1, 3 * s["obs_size"])))
    assert np.isfinite(act).all()
