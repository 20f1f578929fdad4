"""rsl-rl-lib models for the student side: an MLP with an optional reference feed-forward read at any offset.

When the teacher is residual (``train.ppo.residual``, pipeline/learn/models.py) its action is
``mlp(normalize(obs)) + (ref_joint_pos - default) / action_scale``. The student does the same with the
reference joint positions of the *newest* frame of its history, at ``ff_start = (H - 1) * D`` in the flat
history, so a zero MLP already servoes the reference and distillation only learns the correction.
"""

from __future__ import annotations

from typing import Any

import torch
from rsl_rl.models import MLPModel
from tensordict import TensorDict


class FeedForwardMLPModel(MLPModel):
    """``MLPModel`` + ``(obs[first group][:, ff_start : ff_start + N] - ff_offset) / ff_scale`` (if given)."""

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        ff_offset: list[float] | None = None,
        ff_scale: list[float] | None = None,
        ff_start: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(obs, obs_groups, obs_set, output_dim, **kwargs)
        self.ff_start = int(ff_start)
        self.has_ff = ff_offset is not None
        off = ff_offset if ff_offset is not None else [0.0] * output_dim
        scale = ff_scale if ff_scale is not None else [1.0] * output_dim
        self.register_buffer("ff_offset", torch.tensor(off, dtype=torch.float32))
        self.register_buffer("ff_scale", torch.tensor(scale, dtype=torch.float32))

    def feed_forward(self, obs: TensorDict) -> torch.Tensor | float:
        if not self.has_ff:
            return 0.0
        x = obs[self.obs_groups[0]]
        n = self.ff_offset.numel()
        return (x[..., self.ff_start : self.ff_start + n] - self.ff_offset) / self.ff_scale

    def forward(
        self,
        obs: TensorDict,
        masks: torch.Tensor | None = None,
        hidden_state: Any = None,
        stochastic_output: bool = False,
    ) -> torch.Tensor:
        out = self.mlp(self.get_latent(obs, masks, hidden_state)) + self.feed_forward(obs)
        if self.distribution is not None:
            if stochastic_output:
                self.distribution.update(out)
                return self.distribution.sample()
            return self.distribution.deterministic_output(out)
        return out


def feed_forward_kwargs(teacher_actor_cfg: dict[str, Any], ff_start: int) -> dict[str, Any]:
    """The feed-forward settings matching the teacher's actor config (none if the teacher is not residual)."""
    if "ff_offset" not in teacher_actor_cfg:
        return {}
    return {
        "ff_offset": list(teacher_actor_cfg["ff_offset"]),
        "ff_scale": list(teacher_actor_cfg["ff_scale"]),
        "ff_start": int(ff_start),
    }
