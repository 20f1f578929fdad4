"""Actor models for rsl-rl-lib: an MLP whose output is a residual around the reference joint positions.

:class:`ResidualMLPModel` is the actor of the teacher (``train.ppo.residual``), of distillation's student and of
the RMA teacher (:class:`pipeline.learn.rma.EncoderMLPModel`). It outputs

    mlp(normalize(obs)) + (obs[:, ff_start : ff_start + N] - ff_offset) / ff_scale

where ``obs`` is the first observation group, un-normalized, and ``obs[:, ff_start : ff_start + N]`` are the
reference joint positions: the actor observation's first term (``ff_start = 0``, the teacher) or that term of
the *newest* frame of a flat history (``ff_start = (H - 1) * D``, the student). With ``ff_offset`` = the default
pose and ``ff_scale`` = the action scale, the deploy contract's ``target = default + action_scale * action``
makes the joint target ``ref_joint_pos + action_scale * mlp(...)``: a zero MLP already servoes the reference,
which matters when experience is as scarce as on a CPU, and distillation only learns the correction. Without
``ff_offset`` the model is rsl-rl's ``MLPModel``.

The feed-forward is part of the module (``forward``, ``as_onnx``, ``as_jit``, :meth:`deploy_module`), so an
export needs nothing else: same observation, same action. (The student's deploy bundle is exported from
:class:`pipeline.learn.student.StudentPolicy`, rebuilt from this model by ``policy_from_mlp_model``.)
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from rsl_rl.models import MLPModel
from tensordict import TensorDict
from torch import nn


class _Residual(nn.Module):
    """obs (B, D) -> action (B, N): normalizer, MLP, plus the reference feed-forward."""

    def __init__(self, model: ResidualMLPModel) -> None:
        super().__init__()
        self.obs_normalizer = copy.deepcopy(model.obs_normalizer)
        self.mlp = copy.deepcopy(model.mlp)
        self.register_buffer("ff_offset", model.ff_offset.clone())
        self.register_buffer("ff_scale", model.ff_scale.clone())
        self.has_ff = model.has_ff
        self.ff_start = model.ff_start
        self.n = int(model.ff_offset.numel())
        self.input_size = model.obs_dim
        self.is_recurrent = False

    ff_offset: torch.Tensor
    ff_scale: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.mlp(self.obs_normalizer(x))
        if not self.has_ff:
            return out
        return out + (x[..., self.ff_start : self.ff_start + self.n] - self.ff_offset) / self.ff_scale

    def get_dummy_inputs(self) -> tuple[torch.Tensor]:
        return (torch.zeros(1, self.input_size),)

    @property
    def input_names(self) -> list[str]:
        return ["obs"]

    @property
    def output_names(self) -> list[str]:
        return ["actions"]

    def reset(self) -> None:
        pass


class ResidualMLPModel(MLPModel):
    """MLPModel (Gaussian head: the MLP output is the mean) plus the reference feed-forward (module docstring).

    ``last_layer_gain`` scales the last layer's initial weights (and zeroes its bias when below 1): the teacher
    uses 0.01, so the untrained policy's mean is the reference itself, not the reference plus a random per-joint
    offset of a few tenths of the action scale.
    """

    ff_offset: torch.Tensor
    ff_scale: torch.Tensor

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
        last_layer_gain: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(obs, obs_groups, obs_set, output_dim, **kwargs)
        if (ff_offset is None) != (ff_scale is None):
            raise ValueError("ff_offset and ff_scale go together")
        self.has_ff = ff_offset is not None
        off = ff_offset if ff_offset is not None else [0.0] * output_dim
        scale = ff_scale if ff_scale is not None else [1.0] * output_dim
        if len(off) != output_dim or len(scale) != output_dim:
            raise ValueError("ff_offset/ff_scale need one value per action")
        self.ff_start = int(ff_start)
        self.register_buffer("ff_offset", torch.tensor(off, dtype=torch.float32))
        self.register_buffer("ff_scale", torch.tensor(scale, dtype=torch.float32))
        if last_layer_gain != 1.0:
            last = [m for m in self.mlp.modules() if isinstance(m, nn.Linear)][-1]
            with torch.no_grad():
                last.weight.mul_(last_layer_gain)
                last.bias.zero_()

    def feed_forward(self, obs: TensorDict) -> torch.Tensor | float:
        """(B, N) the reference term of the action (0 without a feed-forward)."""
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

    def deploy_module(self) -> nn.Module:
        """A standalone obs (B, D) -> actions (B, N) module (normalizer + MLP + feed-forward)."""
        return _Residual(self)

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        return _Residual(self)

    def as_jit(self) -> nn.Module:
        return _Residual(self)


def feed_forward_kwargs(teacher_actor_cfg: dict[str, Any], ff_start: int) -> dict[str, Any]:
    """The feed-forward settings matching the teacher's actor config (none if the teacher is not residual)."""
    if "ff_offset" not in teacher_actor_cfg:
        return {}
    return {
        "ff_offset": list(teacher_actor_cfg["ff_offset"]),
        "ff_scale": list(teacher_actor_cfg["ff_scale"]),
        "ff_start": int(ff_start),
    }
