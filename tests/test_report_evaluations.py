"""The agreement of finetuning and linear probing (evaluation: both), against Spearman's rho worked by hand."""
from __future__ import annotations

import pytest

from basefuse.experiments.records import RunRecord
from basefuse.reports.evaluations import agreement, evaluations_in


def _rec(cond, target, acc, evaluation=None, seed=0):
    extra = {"evaluation": evaluation} if evaluation else {}
    return RunRecord(target=target, target_family="f", condition=cond, source_family=None if cond == "pretrained"
                     else "all", seed=seed, accuracy=acc, macro_f1=acc, **extra)


def test_agreement_of_accuracies_and_of_gains_by_hand():
    ft = {("pretrained", "t1"): .50, ("pretrained", "t2"): .60, ("pretrained", "t3"): .70,
          ("fused", "t1"): .55, ("fused", "t2"): .58, ("fused", "t3"): .74}
    pr = {("pretrained", "t1"): .40, ("pretrained", "t2"): .52, ("pretrained", "t3"): .61,
          ("fused", "t1"): .44, ("fused", "t2"): .57, ("fused", "t3"): .64}
    records = [_rec(c, t, a) for (c, t), a in ft.items()] + [_rec(c, t, a, "linear_probe") for (c, t), a in pr.items()]
    records += [_rec("fused", "t1", .55, seed=1)]  # a second seed of the same value: the cell mean is unchanged
    ag = agreement(records, 0.0)
    # accuracies: finetune ranks [1,4,5,2,3,6], probe [1,3,5,2,4,6] (cells in the order above): sum d^2 = 2,
    # rho = 1 - 6*2 / (6*(36-1)) = 0.942857...
    assert ag.n == 6 and ag.rho == pytest.approx(1 - 12 / 210)
    # gains over pretrained: finetune +5, -2, +4 -> ranks [3,1,2]; probe +4, +5, +3 -> [2,3,1]; sum d^2 = 6,
    # rho = 1 - 6*6 / (3*(9-1)) = -0.5
    assert ag.n_gain == 3 and ag.rho_gain == pytest.approx(-0.5)
    assert evaluations_in(records) == ["finetune", "linear_probe"]


def test_agreement_needs_three_cells():
    records = [_rec("pretrained", "t1", .5), _rec("pretrained", "t1", .4, "linear_probe")]
    ag = agreement(records, 0.0)
    assert ag.rho is None and ag.n == 1 and ag.rho_gain is None and ag.n_gain == 0
