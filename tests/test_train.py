"""Teacher training glue on a tiny problem: rsl-rl runner through the VecEnv adapter, budget, checkpoint and
resume, curves, evaluation metrics, the residual actor's exports, bad inputs before training."""

from __future__ import annotations

import csv
import dataclasses
import json
import types

import numpy as np
import pytest
import torch

from pipeline.errors import InputError
from pipeline.evaluate.rollout import METRICS
from pipeline.learn.teacher import (
    actor_groups,
    build_runner,
    evaluate_teacher,
    load_motions,
    teacher_policy,
    train,
)
from pipeline.sim.config import BudgetConfig, SelectConfig, from_dict
from pipeline.sim.task import TrackingEnv

from .sim_helpers import swing_motion

MOTION = swing_motion(60, walk_speed=0.3, cyclic=True)


def _cfg(env_steps: int):
    return from_dict(
        {
            "num_envs": 4,
            "sim": {"nthread": 1},
            "budget": {"minutes": 0, "env_steps": env_steps},
            "checkpoint_every": 1,
            "ppo": {
                "num_steps_per_env": 8,
                "num_mini_batches": 2,
                "actor_hidden": [32, 32],
                "critic_hidden": [32],
            },
            "eval": {"episodes_per_clip": 2, "min_episode_s": 0.5},
        }
    )


def test_train_checkpoint_resume_and_evaluate(tmp_path):
    cfg = _cfg(64)  # 2 iterations of 4 envs x 8 steps
    r1 = train(cfg, [MOTION], ["swing"], tmp_path, progress=False)
    assert (r1.iterations, r1.env_steps, r1.resumed_from) == (2, 64, 0)
    assert 0 < r1.update_share < 1
    assert (tmp_path / "checkpoints" / "last.pt").exists() and (tmp_path / "policy.pt").exists()
    # a larger budget for the same run resumes from the checkpoint (the budget is not part of the identity)
    cfg2 = dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, env_steps=96))
    r2 = train(cfg2, [MOTION], ["swing"], tmp_path, progress=False)
    assert (r2.resumed_from, r2.iterations, r2.env_steps) == (2, 3, 96)
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r["value_loss"])) for r in rows)
    metrics = evaluate_teacher(tmp_path / "policy.pt", cfg2, [MOTION], ["swing"])
    for block in (metrics["overall"], metrics["clips"]["swing"]):
        assert set(block) == {*METRICS, "episodes", "episode_s"}
        assert block["episodes"] == 2 and 0 <= block["success_rate"] <= 1 and block["mpkpe_mm"] > 0
    assert metrics["overall"]["episode_s"] >= 0.5  # cyclic clip evaluated for at least min_episode_s
    json.dumps(metrics)


def test_a_step_budget_leads_the_schedules_and_the_minutes_stop_a_slow_run(tmp_path, monkeypatch):
    import pipeline.learn.teacher as teacher

    clock = iter(range(0, 10**6, 5))  # a slow machine: each reading of the clock 5 s on, 10 s per iteration
    monkeypatch.setattr(teacher, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    cfg = dataclasses.replace(
        _cfg(320),  # 10 iterations
        budget=BudgetConfig(minutes=0.5, env_steps=320),
        select=SelectConfig(every=0),
        ppo=dataclasses.replace(_cfg(1).ppo, schedule="linear", learning_rate=1e-3, final_learning_rate=1e-4),
    )
    result = train(cfg, [MOTION], ["swing"], tmp_path, progress=False)
    assert (result.iterations, result.env_steps) == (3, 96)  # 30 s: stopped after 3 of the 10 iterations
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    rates = [float(r["learning_rate"]) for r in rows]
    assert rates == pytest.approx([1e-3 - 0.9e-3 * k / 10 for k in range(3)])  # by the steps, not the clock


def test_policy_is_the_best_scored_checkpoint_and_the_rate_decays(tmp_path):
    cfg = dataclasses.replace(
        _cfg(160),  # 5 iterations, each scored
        select=SelectConfig(every=1, start=0.0, episodes_per_clip=2),
        ppo=dataclasses.replace(_cfg(1).ppo, schedule="linear", learning_rate=1e-3, final_learning_rate=1e-4),
    )
    result = train(cfg, [MOTION], ["swing"], tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    scores = [
        (float(r["select_success_rate"]), float(r["select_survival_s"]), -float(r["select_mpkpe_mm"]))
        for r in rows
    ]
    assert len(scores) == 5 and result.selected is not None
    # the selected iteration is the first with the best score (a later tie does not replace it)
    assert result.selected["iteration"] == int(rows[scores.index(max(scores))]["iteration"])
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)
    chosen = torch.load(tmp_path / "policy.pt", weights_only=False)
    assert chosen["iter"] == best["iter"] == result.selected["iteration"]
    for k, v in best["actor_state_dict"].items():
        assert torch.equal(v, chosen["actor_state_dict"][k])
    rates = [float(r["learning_rate"]) for r in rows]
    assert rates == pytest.approx([1e-3 - 0.9e-3 * k / 5 for k in range(5)])  # set before each iteration
    # a resumed run keeps the best score it had: a longer budget selects among old and new iterations. The score
    # is best.pt's own, not last.pt's copy (which is older when a run is killed between the two saves)
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    last["infos"]["best"] = {"iteration": 0, "success_rate": 2.0, "survival_s": 99.0, "mpkpe_mm": 0.0}
    torch.save(last, tmp_path / "checkpoints" / "last.pt")
    more = dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, env_steps=192))
    again = train(more, [MOTION], ["swing"], tmp_path, progress=False)
    assert again.resumed_from == 5
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    scores = [
        (float(r["select_success_rate"]), float(r["select_survival_s"]), -float(r["select_mpkpe_mm"]))
        for r in rows
    ]
    assert len(scores) == 6 and again.selected["iteration"] == int(
        rows[scores.index(max(scores))]["iteration"]
    )
    # without selection the policy is the final iterate
    final = train(dataclasses.replace(_cfg(64), select=SelectConfig(every=0)), [MOTION], ["swing"],
                  tmp_path / "plain", progress=False)  # fmt: skip
    assert final.selected is None
    assert torch.load(tmp_path / "plain" / "policy.pt", weights_only=False)["iter"] == 2


def test_teacher_reads_its_anchor_position_only_when_configured(tmp_path):
    cfg = dataclasses.replace(_cfg(32), actor_anchor_pos=True)
    train(cfg, [MOTION], ["swing"], tmp_path, progress=False)
    policy = teacher_policy(tmp_path / "policy.pt", cfg)
    assert policy.groups == ("actor", "anchor_pos")
    env = TrackingEnv(cfg, [MOTION], ["swing"], num_envs=2)
    obs = env.reset()
    x = np.concatenate([obs["actor"], obs["anchor_pos"]], axis=1)
    moved = x.copy()
    moved[:, -3:] += [0.3, -0.2, 0.0]
    assert np.abs(policy.act(moved) - policy.act(x)).max() > 1e-6
    blind = dataclasses.replace(cfg, actor_anchor_pos=False)
    train(blind, [MOTION], ["swing"], tmp_path / "blind", progress=False)
    assert teacher_policy(tmp_path / "blind" / "policy.pt", blind).groups == ("actor",)


def test_other_config_does_not_resume(tmp_path):
    cfg = _cfg(32)
    train(cfg, [MOTION], ["swing"], tmp_path, progress=False)
    other = dataclasses.replace(cfg, seed=5)
    assert train(other, [MOTION], ["swing"], tmp_path, progress=False).resumed_from == 0


def test_residual_actor_exports_the_same_action():
    cfg = _cfg(32)
    env = TrackingEnv(cfg, [MOTION], ["swing"])
    vec, runner = build_runner(env, cfg)
    assert runner.alg.symmetry is not None and runner.alg.symmetry.use_data_augmentation  # train.ppo.symmetry
    actor = runner.alg.get_policy()
    obs = vec.get_observations()
    actor.update_normalization(obs)
    with torch.inference_mode():
        a = actor(obs)
        x = torch.cat([obs[g] for g in actor_groups(cfg)], dim=-1)  # the export reads the groups concatenated
        b = actor.deploy_module()(x)
        c = actor.as_onnx(False)(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    # the feed-forward makes a zero-residual action reproduce the reference joints as targets
    ref = obs["actor"][:, : env.num_actions].numpy()
    zero = (ref - env.default) / env.action_scale
    with torch.no_grad():
        for p in actor.mlp.parameters():
            p.zero_()
        np.testing.assert_allclose(actor(obs).numpy(), zero, rtol=1e-5, atol=1e-5)


def test_bad_clips_fail_before_training(tmp_path):
    cfg = _cfg(32)
    with pytest.raises(InputError, match="no robot motion"):
        load_motions(cfg, tmp_path)
    bad = dataclasses.replace(MOTION, robot="h1")
    with pytest.raises(InputError, match="robot 'h1'"):
        train(cfg, [bad], ["walk"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "policy.pt").exists()


def test_clip_failing_its_quality_gate_is_kept_out_of_training(tmp_path, capsys):
    cfg = from_dict({"clips": ["a", "b"], "loop": []})
    motion = swing_motion()
    for name, skate in (("a", 5.0), ("b", 80.0)):
        motion.save(tmp_path / f"{name}.npz")
        (tmp_path / f"{name}.quality.json").write_text(json.dumps({"foot_skate_mean_mm_s": skate}))
    motions, names = load_motions(cfg, tmp_path)
    assert names == ["a"] and len(motions) == 1
    assert "'b' kept out of training" in capsys.readouterr().err
    (tmp_path / "a.quality.json").write_text(json.dumps({"self_collisions": 3}))
    with pytest.raises(InputError, match="quality gate"):
        load_motions(cfg, tmp_path)
