"""Finetuning hyperparameters: one validated object shared by the CLI, the API and experiments.

Every field here is a hyperparameter of a finetune: the CLI's options, an experiment config's `finetune:` keys and
the job keys (which hash `model_dump()`) all come from this one declaration.
"""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

# A finite float: `inf`/`nan` in a numeric option is a typo, never a setting (issue 8).
_FINITE = {"allow_inf_nan": False}


class FinetuneConfig(BaseModel):
    """Defaults follow the seed paper's protocol (AdamW, linear schedule, early stopping on validation).

    Training length adapts to the data: a run lasts `max_epochs` epochs but at least `min_steps` optimiser steps,
    so a small training set still gets enough updates to converge; early stopping on validation (evaluated
    `evals_per_run` times when `eval_every` is not set) ends it sooner once the model stops improving.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(2e-4, gt=0, **_FINITE)
    batch_size: int = Field(32, ge=1, description="examples per forward/backward pass")
    grad_accum: int = Field(1, ge=1, description="passes per optimiser step (effective batch = batch_size x this)")
    max_epochs: float = Field(3.0, gt=0, **_FINITE)
    min_steps: int = Field(100, ge=0, description="optimiser steps a run may last at least, whatever max_epochs "
                                                  "gives (small training sets need more epochs to converge)")
    max_length: int = Field(64, ge=8)
    weight_decay: float = Field(0.0, ge=0, **_FINITE)
    warmup_ratio: float = Field(0.06, ge=0, lt=1, **_FINITE)
    max_grad_norm: float | None = Field(1.0, gt=0, **_FINITE, description="clip the gradient's global L2 norm "
                                                                            "(as the HF Trainer); null: no clipping")
    bf16: bool = Field(True, description="bf16 autocast on a GPU that supports it (never on CPU)")
    eval_every: int | None = Field(None, ge=1, description="evaluate on validation every N optimiser steps "
                                                           "(default: evals_per_run times per run)")
    evals_per_run: int = Field(10, ge=1, description="validations per run when eval_every is not set")
    patience: int = Field(3, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(0.001, ge=0, **_FINITE,
                             description="minimum validation-accuracy gain that counts as improvement")
    max_train: int | None = Field(None, ge=2, description="subsample train (stratified, deterministic)")
    max_eval: int | None = Field(None, ge=2, description="cap validation size used for early stopping")
    max_test: int | None = Field(None, ge=2, description="cap test size (e.g. for source models in an experiment, "
                                                          "whose test score is only a sanity check)")

    def eval_interval(self, total_steps: int) -> int:
        """Optimiser steps between validations: `eval_every`, or the run split into `evals_per_run` parts."""
        if self.eval_every is not None:
            return self.eval_every
        return max(1, math.ceil(total_steps / self.evals_per_run))


CLI_FLAGS = {"learning_rate": "--lr", "max_epochs": "--epochs", "batch_size": "--batch-size",
             "grad_accum": "--grad-accum", "min_steps": "--min-steps", "max_length": "--max-length",
             "weight_decay": "--weight-decay", "warmup_ratio": "--warmup-ratio", "max_grad_norm": "--max-grad-norm",
             "max_train": "--max-train", "max_eval": "--max-eval", "max_test": "--max-test",
             "eval_every": "--eval-every", "patience": "--patience"}
"""The `basefuse finetune` option of each FinetuneConfig field: errors name the option typed, and a saved model's
card gives the command that made it."""
