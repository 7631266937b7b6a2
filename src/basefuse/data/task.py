"""The one task interface every loader returns and the finetuner consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # datasets is heavy; only needed by loaders
    from datasets import Dataset


@dataclass
class Task:
    """A labelled text-classification task with its three splits.

    Each split is a `datasets.Dataset` with columns `text` (str), `label` (int in
    `range(len(label_names))`) and, for sentence-pair tasks, `text_pair` (str).
    `fingerprint` identifies the content (data and split recipe) so that experiment
    jobs can be cached by it.
    """

    name: str
    train: "Dataset"
    validation: "Dataset"
    test: "Dataset"
    label_names: list[str]
    family: str | None = None
    source: str = ""
    fingerprint: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def has_pair(self) -> bool:
        return "text_pair" in self.train.column_names
