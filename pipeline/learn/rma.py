"""RMA-style student (``distill.method: rma``): privileged encoder in the teacher, adaptation from history.

1. Teacher with a privileged encoder: the actor reads the deployable ``actor`` frame and a latent
   ``z = encoder(priv)`` of the randomized parameters (:class:`EncoderMLPModel`, an rsl-rl ``MLPModel``),
   trained with rsl-rl PPO. It is warm-started from the train stage's teacher: the same weights with zero
   columns for ``z`` in the first layer (so it starts as that teacher's policy) and its critic.
2. Adaptation: an MLP ``phi(history) -> z_hat`` regressed onto ``z`` (MSE) on states visited by the student
   itself (the base policy driven by ``z_hat``; the first batch is collected by the privileged teacher),
   DAgger-style. The base policy and encoder stay frozen.

The student (:class:`pipeline.learn.student.AdaptationActor`) = frozen base policy(current frame, phi(history)).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict
from torch import nn

from pipeline.learn.distill import Budget, DistillConfig, _episode_row, ppo_iteration
from pipeline.learn.models import ResidualMLPModel, feed_forward_kwargs
from pipeline.learn.student import AdaptationActor, StudentPolicy, mlp
from pipeline.learn.teacher import runner_config
from pipeline.learn.vecenv import TrackingVecEnv
from pipeline.sim.config import TrainConfig


class EncoderMLPModel(ResidualMLPModel):
    """rsl-rl ``MLPModel`` whose last observation group (``priv``) goes through an encoder to a latent first:
    ``mlp(cat(norm(obs)[:, :-P], encoder(norm(obs)[:, -P:]))) + feed_forward(actor frame)``."""

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        *,
        latent_dim: int = 8,
        encoder_hidden: tuple[int, ...] | list[int] = (64,),
        **kwargs: Any,
    ) -> None:
        self._priv_dim = int(obs[obs_groups[obs_set][-1]].shape[-1])
        self._latent_dim = latent_dim
        super().__init__(obs, obs_groups, obs_set, output_dim, **kwargs)
        self.encoder = mlp([self._priv_dim, *encoder_hidden, latent_dim])

    def _get_latent_dim(self) -> int:
        return self.obs_dim - self._priv_dim + self._latent_dim

    def split(self, obs: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalized deployable part, latent z)."""
        x = self.obs_normalizer(torch.cat([obs[g] for g in self.obs_groups], dim=-1))
        return x[:, : -self._priv_dim], self.encoder(x[:, -self._priv_dim :])

    def get_latent(self, obs: TensorDict, masks: Any = None, hidden_state: Any = None) -> torch.Tensor:
        a, z = self.split(obs)
        return torch.cat([a, z], dim=-1)

    def deploy_module(self) -> nn.Module:
        # the privileged teacher reads simulator state a robot does not have; the RMA student is what deploys
        raise NotImplementedError("EncoderMLPModel is not exported; export the RMA student (StudentPolicy)")

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        return self.deploy_module()

    def as_jit(self) -> nn.Module:
        return self.deploy_module()


def _warm_start(model: EncoderMLPModel, actor_state: dict[str, torch.Tensor], obs_size: int) -> None:
    """Copy the plain teacher's actor into the encoder model (zero weights on z: same actions at start). The
    encoder model reads the deployable frame only: a teacher input beyond it (``anchor_pos``) is dropped."""
    own = model.state_dict()
    for k, v in actor_state.items():
        if k.startswith("obs_normalizer._") and k != "obs_normalizer.count":
            own[k][..., :obs_size] = v[..., :obs_size]
        elif k == "mlp.0.weight":
            own[k].zero_()
            own[k][:, :obs_size] = v[:, :obs_size]
        elif k in own and own[k].shape == v.shape:
            own[k] = v.clone()
    model.load_state_dict(own)


def _ppo_teacher(
    dcfg: DistillConfig, tcfg: TrainConfig, vec: TrackingVecEnv, teacher: dict[str, Any], progress: bool
) -> tuple[EncoderMLPModel, list[dict[str, Any]]]:
    from rsl_rl.runners import OnPolicyRunner

    r = dcfg.rma
    cfg = runner_config(tcfg)
    cfg["obs_groups"] = {"actor": ["actor", "priv"], "critic": ["critic"]}
    actor = {k: v for k, v in cfg["actor"].items() if k not in ("ff_offset", "ff_scale")}
    cfg["actor"] = {**actor, **feed_forward_kwargs(cfg["actor"], 0), "class_name": f"{__name__}:EncoderMLPModel",
                    "latent_dim": r.latent, "encoder_hidden": list(r.encoder_hidden)}  # fmt: skip
    cfg["algorithm"] = {
        **cfg["algorithm"],
        "learning_rate": dcfg.finetune_learning_rate,
        "symmetry_cfg": None,
    }  # fmt: skip (the priv group has no mirror rule)
    torch.manual_seed(dcfg.seed)
    runner = OnPolicyRunner(vec, cfg, log_dir=None, device="cpu")
    alg = runner.alg
    obs_size = vec.env.obs_size  # type: ignore[attr-defined]
    _warm_start(alg.actor, teacher["actor_state_dict"], obs_size)  # type: ignore[arg-type]
    alg.critic.load_state_dict(teacher["critic_state_dict"])
    obs = vec.get_observations()
    alg.train_mode()
    rows: list[dict[str, Any]] = []
    with Budget("rma teacher", max(r.teacher_iterations, 1), 1e9, progress) as budget:
        for _ in range(r.teacher_iterations):
            obs, value_loss = ppo_iteration(alg, vec, obs, dcfg.num_steps_per_env)
            row = {"iteration": budget.it + 1, "phase": "rma_teacher", "wall_s": round(budget.elapsed, 2),
                   "value_loss": value_loss,
                   **_episode_row(vec)}  # fmt: skip
            rows.append(row)
            budget.tick(f"mpkpe {row['mpkpe_mm']:.0f} mm")
    model: EncoderMLPModel = alg.actor  # type: ignore[assignment]
    return model.eval(), rows


def train_rma(
    dcfg: DistillConfig, tcfg: TrainConfig, vec: TrackingVecEnv, teacher: dict[str, Any], *, progress: bool
) -> tuple[StudentPolicy, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Both RMA phases; returns (student policy, curve rows, arch, summary)."""
    r = dcfg.rma
    enc, rows = _ppo_teacher(dcfg, tcfg, vec, teacher, progress)
    for p in enc.parameters():
        p.requires_grad_(False)
    henv = vec.env
    h, d, n = dcfg.history, henv.obs_size, vec.num_actions  # type: ignore[attr-defined]
    tactor = runner_config(tcfg)["actor"]
    arch = {"latent": r.latent, "adapt_hidden": list(r.adapt_hidden), "actor_hidden": list(tcfg.ppo.actor_hidden),
            **{k: list(tactor[k]) for k in ("ff_offset", "ff_scale") if k in tactor}}  # fmt: skip
    policy = StudentPolicy("rma", h, d, n, arch)
    actor: AdaptationActor = policy.actor  # type: ignore[assignment]
    actor.base.load_state_dict(enc.mlp.state_dict())
    src: Any = enc.obs_normalizer
    actor.obs_norm.mean.copy_(src.mean[:d])
    actor.obs_norm.std.copy_(src.std[:d])
    actor.obs_norm.eps = actor.hist_norm.eps = float(src.eps)
    for p in actor.base.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(actor.adapt.parameters(), lr=r.adapt_learning_rate)
    obs = vec.get_observations()
    g = torch.Generator().manual_seed(dcfg.seed)
    first_loss = last_loss = float("nan")
    with Budget("rma adapt", max(r.adapt_iterations, 1), dcfg.budget_minutes, progress) as budget:
        for it in range(r.adapt_iterations):
            hist, target = [], []
            with torch.inference_mode():
                for _ in range(dcfg.num_steps_per_env):
                    _, z = enc.split(obs)
                    hist.append(obs["student"].clone())
                    target.append(z.clone())
                    actions = enc(obs) if it == 0 else actor(obs["student"])
                    obs, _, _, _ = vec.step(actions)
            x, y = torch.cat(hist).clone(), torch.cat(target).clone()
            if it == 0:
                actor.hist_norm.mean.copy_(x.mean(0))
                actor.hist_norm.std.copy_(x.std(0))
            total, batches = 0.0, 0
            for _ in range(r.adapt_epochs):
                perm = torch.randperm(x.shape[0], generator=g)
                for idx in perm.split(max(256, x.shape[0] // 4)):
                    loss = nn.functional.mse_loss(actor.latent(x[idx]), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total, batches = total + loss.item(), batches + 1
            last_loss = total / batches
            first_loss = last_loss if it == 0 else first_loss
            row = {"iteration": len(rows) + 1, "phase": "rma_adapt", "wall_s": round(budget.elapsed, 2),
                   "latent_loss": last_loss, **_episode_row(vec)}  # fmt: skip
            rows.append(row)
            budget.tick(f"latent loss {last_loss:.4f}")
            if budget.fraction() >= 1.0:
                break
    policy.eval()
    extra = {
        "rma_teacher_iterations": r.teacher_iterations,
        "adapt_iterations": sum(1 for x in rows if x.get("phase") == "rma_adapt"),
        "latent_loss_first": first_loss,
        "latent_loss_last": last_loss,
    }
    return policy, rows, arch, extra
