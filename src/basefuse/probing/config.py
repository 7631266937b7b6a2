"""Linear-probe settings: one validated object shared by the CLI, the API and the `probe` job kind (whose key
hashes `model_dump()`)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_FINITE = {"allow_inf_nan": False}

DEFAULT_C_GRID = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]


class ProbeConfig(BaseModel):
    """A frozen base's pooled features, standardised on train, and an L2 logistic regression per C.

    `pooling` defaults to "mean" (mean of the last hidden states over the attention mask): a base that was never
    trained with a sentence-level objective (a fused body, whose pooler and heads are dropped) has no trained [CLS]
    summary, and mean pooling is the stronger and more stable frozen readout for such encoders; "cls" is the
    first token's last hidden state (not the pooler), for comparison.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_length: int = Field(64, ge=8, description="truncate inputs to N tokens (as FinetuneConfig.max_length)")
    batch_size: int = Field(64, ge=1, description="examples per forward pass of feature extraction")
    pooling: Literal["mean", "cls"] = Field("mean", description="mean over the attention mask, or the first token")
    c_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_C_GRID), min_length=1,
                                description="inverse L2 strengths tried; the best on validation is kept")
    max_iter: int = Field(1000, ge=1, description="lbfgs iterations per fit")
    max_eval: int | None = Field(None, ge=2, description="cap validation size (fixed random subset, as finetuning)")
    max_test: int | None = Field(None, ge=2, description="cap test size (fixed random subset, as finetuning)")

    @field_validator("c_grid")
    @classmethod
    def _positive_sorted(cls, grid: list[float]) -> list[float]:
        """Positive, finite, distinct; kept sorted ascending so ties resolve to the smaller C by position."""
        import math

        if any(not math.isfinite(c) or c <= 0 for c in grid):
            raise ValueError(f"every C must be a positive finite number, got {grid}")
        if len(set(grid)) != len(grid):
            raise ValueError(f"C values must be distinct, got {grid}")
        return sorted(float(c) for c in grid)
