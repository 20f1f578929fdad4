"""Actor models for rsl-rl-lib: an MLP whose output is a residual around the reference joint positions.

``ResidualMLPModel`` outputs ``mlp(normalize(obs)) + (obs[:, :N] - default) / action_scale``, where
``obs[:, :N]`` is the actor observation's first term, the reference joint positions (un-normalized, no noise).
With the deploy contract's ``target = default + action_scale * action`` this makes the joint target
``ref_joint_pos + action_scale * mlp(...)``: a zero MLP already servoes the reference, which matters when
experience is as scarce as on a CPU. The residual is part of the module (``forward``, ``as_onnx``,
``as_jit``, :meth:`deploy_module`), so an exported policy needs nothing else: same observation, same action.
"""

from __future__ import annotations

import copy

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
        self.n = int(model.ff_offset.numel())
        self.input_size = model.obs_dim
        self.is_recurrent = False

    ff_offset: torch.Tensor
    ff_scale: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.obs_normalizer(x)) + (x[..., : self.n] - self.ff_offset) / self.ff_scale

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
    """MLPModel (Gaussian head: the MLP output is the mean) plus the reference feed-forward (module docstring)."""

    ff_offset: torch.Tensor
    ff_scale: torch.Tensor

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        ff_offset: list[float],
        ff_scale: list[float],
        **kwargs,
    ) -> None:
        super().__init__(obs, obs_groups, obs_set, output_dim, **kwargs)
        if len(ff_offset) != output_dim or len(ff_scale) != output_dim:
            raise ValueError("ff_offset/ff_scale need one value per action")
        self.register_buffer("ff_offset", torch.tensor(ff_offset, dtype=torch.float32))
        self.register_buffer("ff_scale", torch.tensor(ff_scale, dtype=torch.float32))
        # a near-zero last layer: the untrained policy's mean is the reference itself, not the reference plus
        # a random per-joint offset of a few tenths of the action scale
        last = [m for m in self.mlp.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.zero_()

    def _feed_forward(self, obs: TensorDict) -> torch.Tensor:
        first = obs[self.obs_groups[0]]
        return (first[..., : self.ff_offset.numel()] - self.ff_offset) / self.ff_scale

    def forward(
        self,
        obs: TensorDict,
        masks: torch.Tensor | None = None,
        hidden_state=None,
        stochastic_output: bool = False,
    ) -> torch.Tensor:
        latent = self.get_latent(obs, masks, hidden_state)
        out = self.mlp(latent) + self._feed_forward(obs)
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
