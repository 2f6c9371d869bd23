"""Typed configuration of the fused recommender (pydantic: defaults, ranges, round-trip)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, NonNegativeFloat, PositiveFloat, model_validator

from kgrec.config import ConfigModel, field_error
from kgrec.encoders.text import TextEncoderConfig


class ModelConfig(ConfigModel):
    """Shape of the fused model."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(64, ge=4, le=1024, description="size of the structural, text and fused vectors")
    layers: int = Field(2, ge=0, le=6, description="GNN propagation layers")
    recency_half_life: float = Field(
        25.0, ge=0.0, description="user-item edge weight halves every this many newer interactions (0 = off)"
    )
    item_text_in_gnn: bool = Field(
        False,
        description="also add item text vectors to the GNN's item inputs (off: text enters through the text tower only)",
    )
    recent_window: int = Field(
        50,
        ge=0,
        le=1000,
        description="newest items pooled (learned recency profile) into each user's recent-interest vector (0 = off)",
    )
    content_dropout: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="share of items scored from their text alone at each training step, so that items without "
        "interactions (scored that way) rank sensibly (DropoutNet-style; 0 = off)",
    )
    fusion: Literal["gate", "mean"] = Field(
        "gate",
        description="how the structural and text vectors are joined: a learned per-dimension gate, or their plain mean",
    )
    cooccurrence: bool = Field(
        True,
        description="add the co-occurrence part (a low-rank item-item model in closed form, kgrec.fusion.itemitem) "
        "when validation inside fit says it helps; its weight, l2 and form are chosen there from the grids below",
    )
    cooc_zero_diagonal: list[bool] = Field(
        [False, True],
        min_length=1,
        description="forms of the co-occurrence part tried (chosen on validation with the weight and l2): true = "
        "EASE's zero diagonal (each candidate scaled by 1 / (1 - S_ii)), false = the plain low-rank ridge "
        "autoencoder S = E E^T",
    )
    cooc_rank: int = Field(
        512, ge=1, le=4096, description="rank of the co-occurrence part (extra dimensions of the saved vectors)"
    )
    cooc_l2: list[PositiveFloat] = Field(
        [100.0, 300.0, 1000.0],
        min_length=1,
        description="ridge penalties tried for the co-occurrence part (chosen on validation)",
    )
    cooc_weights: list[NonNegativeFloat] = Field(
        [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
        min_length=1,
        description="weights tried for the co-occurrence part, relative to the spread of the fused scores (0 = off; "
        "chosen on validation)",
    )
    use_text: bool = Field(True, description="use the text tower (False = structure only)")
    user_text: Literal["auto", "encode", "compose"] = Field(
        "auto",
        description="how a user's text vector is made: 'encode' runs the text encoder on the whole behaviour text; "
        "'compose' takes the mean of the item text vectors of the newest compose_window items and encodes only the "
        "user's own text (profile, tags, interaction texts; kgrec.encoders.compose); 'auto' = compose when the data "
        "has more than compose_above_users users, else encode",
    )
    compose_window: int = Field(20, ge=1, le=1000, description="newest items a composed user text vector pools")
    compose_above_users: int = Field(
        100_000, ge=0, description="with user_text='auto': compose above this many users (encoding is the bound there)"
    )
    use_structure: bool = Field(True, description="use the graph tower (False = text only)")


class TrainConfig(ConfigModel):
    """How the model is trained."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(100, ge=1, le=10_000, description="maximum epochs")
    batch_size: int = Field(
        8192,
        ge=16,
        le=1_000_000,
        description="interactions per step (at most 1/8 of the data, so every epoch has at least 8 steps)",
    )
    max_steps_per_epoch: int | None = Field(
        64,
        ge=8,
        le=1_000_000,
        description="at most this many steps per epoch: above max_steps_per_epoch x batch_size interactions (524,288 "
        "by default) the batch grows instead, because each step propagates over the whole graph, so an epoch stays "
        "linear in the data (None = no bound: batch_size always)",
    )
    full_softmax_items: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="catalogues with at most this many items use the exact softmax over all items; larger ones use sampled negatives",
    )
    negatives: int = Field(
        512, ge=1, le=100_000, description="shared sampled negatives per step (catalogues above full_softmax_items)"
    )
    lr: float = Field(0.01, gt=0, le=1.0, description="Adam learning rate")
    weight_decay: float = Field(1e-6, ge=0, le=1.0, description="L2 penalty (AdamW-style decoupled)")
    temperature: float = Field(1.0, gt=0, le=10.0, description="softmax temperature of the sampled-softmax loss")
    val_fraction: float = Field(
        0.1, ge=0.0, lt=0.5, description="last fraction of each user's history held out for early stopping"
    )
    patience: int = Field(8, ge=1, le=1000, description="validations without gain before stopping")
    val_users: int | None = Field(
        20_000,
        ge=100,
        le=100_000_000,
        description="validation inside fit (early stopping, the co-occurrence grid) scores at most this many users, "
        "a fixed seeded sample of those with held-out items; its cost grows with users x items (None = all)",
    )
    selection_share: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="share of the validation users kept out of early stopping and scored only by the co-occurrence "
        "grid (a seeded draw): the towers' epoch is chosen on the others, so the grid does not compare towers tuned "
        "on its own users with a part that was not (0 = the same users for both)",
    )
    selection_min_users: int = Field(
        100,
        ge=1,
        description="split the validation users (selection_share) only when each part gets at least this many users "
        "with held-out items: on fewer, half the users is too noisy a measure and both use all of them",
    )
    eval_every: int = Field(2, ge=1, le=100, description="validate every this many epochs")
    refit: Literal["continue", "scratch", "none"] = Field(
        "continue",
        description="after early stopping: 'continue' trains the best model on all data (validation included) for "
        "refit_fraction of the best epoch count; 'scratch' retrains from scratch for the best epoch count; 'none' keeps it",
    )
    refit_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="share of the best epoch count used by refit='continue'"
    )
    warm_fraction: float = Field(
        0.15,
        gt=0.0,
        le=1.0,
        description="share of the saved model's best epoch count that `kgrec train --warm-start` trains on (at half "
        "the learning rate, no validation)",
    )
    alternatives: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=8,
        description="model settings (each a partial `model` section) trained on the internal validation split "
        "beside the configured ones; the one whose fused model (towers and its own co-occurrence grid) scores best "
        "on the selection users is kept (ties: the configured ones) and recorded in the model's metrics; [] (the "
        "default) = the configured settings only; e.g. [{'recent_window': 0}]. Each costs one more training run on "
        "the fit part (early stopping bounds it)",
    )
    seed: int = Field(0, description="random seed")
    threads: int | None = Field(None, ge=1, le=1024, description="torch threads (None = torch's default)")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="data-parallel training processes (torch.distributed, gloo on the CPU) that kgrec train starts; "
        "each takes its shard of every step's batch (batch_size per process); threads: cores / workers",
    )

    @model_validator(mode="after")
    def _alternatives_are_model_settings(self) -> TrainConfig:
        for n, alt in enumerate(self.alternatives):
            unknown = sorted(set(alt) - set(ModelConfig.model_fields))
            if unknown or not alt:
                raise ValueError(
                    f"train.alternatives[{n}]: {', '.join(unknown) or 'empty'}: expected model settings "
                    f"(e.g. {{'recent_window': 0}}); known: {', '.join(sorted(ModelConfig.model_fields))}"
                )
            ModelConfig.model_validate({**ModelConfig().model_dump(), **alt})  # each value in its range
        return self


class ExplainConfig(ConfigModel):
    """How explanations are found and worded."""

    model_config = ConfigDict(extra="forbid")

    interaction_verb: str = Field(
        "interacted with", min_length=1, max_length=40, description="verb in sentences, e.g. 'watched'"
    )
    anchors: int = Field(
        30, ge=1, le=100_000, description="history items considered as path anchors (the strongest first)"
    )

    removed_settings: ClassVar[dict[str, str]] = {
        "max_paths": "never read: the number of paths shown is the `top` argument of explain",
    }


class RecommenderConfig(ConfigModel):
    """Everything that defines a trained model; saved with it."""

    model_config = ConfigDict(extra="forbid")

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    text: TextEncoderConfig = TextEncoderConfig()
    explain: ExplainConfig = ExplainConfig()

    removed_settings: ClassVar[dict[str, str]] = {
        "device": "never read: kgrec trains and scores on the CPU",
    }

    @model_validator(mode="after")
    def _finetune_in_one_process(self) -> RecommenderConfig:
        if self.text.finetune.enabled and self.train.workers > 1:
            raise field_error(
                "text.finetune.enabled",
                True,
                f"false with train.workers={self.train.workers} (fine-tuning the text encoder runs in one process)",
            )
        return self


def user_text_mode(cfg: ModelConfig, n_users: int) -> Literal["encode", "compose"]:
    """What ``cfg.user_text`` resolves to for data with ``n_users`` users."""
    if cfg.user_text == "auto":
        return "compose" if n_users > cfg.compose_above_users else "encode"
    return cfg.user_text
