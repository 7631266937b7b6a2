"""Finetuning hyperparameters: one validated object shared by the CLI, the API and experiments."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FinetuneConfig(BaseModel):
    """Defaults follow the seed paper's protocol (AdamW, linear schedule, early stopping on validation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, ge=1)
    max_epochs: float = Field(3.0, gt=0)
    max_length: int = Field(64, ge=8)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    eval_every: int = Field(50, ge=1, description="evaluate on validation every N optimiser steps")
    patience: int = Field(3, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(0.001, ge=0, description="minimum validation-accuracy gain that counts as improvement")
    max_train: int | None = Field(None, ge=2, description="subsample train (stratified, deterministic)")
    max_eval: int | None = Field(None, ge=2, description="cap validation size used for early stopping")
    max_test: int | None = Field(None, ge=2, description="cap test size (e.g. for source models in an experiment, "
                                                          "whose test score is only a sanity check)")
