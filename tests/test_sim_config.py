"""params.yaml train section: typed, unknown keys rejected, ranges validated."""

from __future__ import annotations

import pytest

from pipeline.errors import InputError
from pipeline.sim.config import TrainConfig, from_dict
from pipeline.stage import params

from .conftest import REPO


def test_params_yaml_train_section_is_valid_and_matches_defaults():
    cfg = from_dict(params("train", path=REPO / "params.yaml"))
    assert cfg.control_dt == pytest.approx(0.02)
    assert cfg.reward == TrainConfig().reward
    assert cfg.randomization == TrainConfig().randomization


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"num_env": 4}, "unknown key(s) train.num_env"),
        ({"reward": {"w_body_poss": 1.0}}, "train.reward.w_body_poss"),
        ({"num_envs": 0}, "num_envs must be > 0"),
        ({"num_envs": "many"}, "must be an integer"),
        ({"reward": {"s_body_pos": 0.0}}, "s_body_pos must be > 0"),
        ({"reward": {"w_action_rate": 0.5}}, "penalty"),
        ({"randomization": {"friction": {"range": [1.2, 0.4]}}}, "range low 1.2 > high 0.4"),
        ({"randomization": {"friction": {"range": [0.0, 0.4]}}}, "friction.range must be > 0"),
        ({"randomization": {"action_latency": {"range": [0.0, 0.5]}}}, "one policy step"),
        ({"sim": {"timestep": 0.05}}, "too coarse"),
        ({"budget": {"minutes": 0, "env_steps": 0}}, "budget"),
        ({"sampling": {"uniform_ratio": 2.0}}, "uniform_ratio"),
        ({"clips": []}, "train.clips is empty"),
        ({"ppo": {"gamma": 1.5}}, "gamma"),
        ({"ppo": {"schedule": "cosine"}}, "train.ppo.schedule must be 'fixed', 'adaptive' or 'linear'"),
        ({"ppo": {"final_learning_rate": 0.0}}, "final_learning_rate must be > 0"),
        ({"select": {"every": -1}}, "train.select needs every >= 0"),
        ({"select": {"start": 1.5}}, "start in [0, 1]"),
        ({"select": {"episodes_per_clip": 0}}, "select.episodes_per_clip must be > 0"),
    ],
)
def test_bad_params_are_clear_errors(raw, message):
    with pytest.raises(InputError) as e:
        from_dict(raw)
    assert message in str(e.value)
