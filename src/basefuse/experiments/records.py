"""One row per target finetune: the contract between the experiment runner and the report."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: Base conditions compared by an experiment.
CONDITIONS = ("pretrained", "fused", "intertrained")


class RunRecord(BaseModel):
    """The outcome of finetuning one base condition on one target task with one seed.

    `source_family` says which sources built the base: a family name, "all" (every
    source except the target's own), or None for the pretrained base. `ablation` is
    "main" for the main grid and "n_models" for the number-of-models ablation, where
    `n_fused` is the number of source models averaged. `intertrained` rows name the one
    source model used in `sources`.
    """

    model_config = ConfigDict(extra="allow")

    target: str
    target_family: str
    condition: str
    source_family: str | None = None
    sources: list[str] = []
    n_fused: int | None = None
    seed: int
    weight_decay: float = 0.0
    ablation: str = "main"
    accuracy: float
    macro_f1: float
    job_key: str = ""

    @property
    def base_label(self) -> str:
        """Row label in the report tables, e.g. "fused (reviews)" or "pretrained"."""
        if self.condition == "pretrained" or self.source_family is None:
            return self.condition
        return f"{self.condition} ({self.source_family})"
