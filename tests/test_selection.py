"""Fusion-set selection (issue 18, item 4): the greedy soup on stubbed probe scores, worked out by hand."""
from __future__ import annotations

import pytest

from basefuse.experiments.selection import Step, greedy, rank


def test_rank_is_by_score_then_name():
    assert rank({"d": 0.6, "c": 0.75, "a": 0.8, "b": 0.75}) == ["a", "b", "c", "d"]


def test_greedy_on_stubbed_scores_picks_the_hand_worked_set():
    # By hand: a alone 0.80 (kept: first); a+b 0.78 < 0.80, dropped; a+c 0.80 = 0.80, kept ("does not drop");
    # a+c+d 0.83 >= 0.80, kept. The chosen set: a, c, d.
    scores = {("a",): 0.80, ("a", "b"): 0.78, ("a", "c"): 0.80, ("a", "c", "d"): 0.83}
    asked = []

    def score_of(members):
        asked.append(members)
        return scores[members]

    steps = greedy(["a", "b", "c", "d"], score_of)
    assert steps == [Step("a", ("a",), 0.80, True), Step("b", ("a", "b"), 0.78, False),
                     Step("c", ("a", "c"), 0.80, True), Step("d", ("a", "c", "d"), 0.83, True)]
    assert asked == list(scores)  # each trial scored once, in rank order


def test_greedy_compares_with_the_last_kept_set_not_the_last_trial():
    # a 0.70; a+b 0.60 dropped; a+c 0.65: below a's 0.70 (though above the dropped trial's 0.60), dropped too
    scores = {("a",): 0.70, ("a", "b"): 0.60, ("a", "c"): 0.65}
    steps = greedy(["a", "b", "c"], scores.__getitem__)
    assert [s.accepted for s in steps] == [True, False, False]
    assert steps[-1].members == ("a", "c")


def test_greedy_needs_a_candidate():
    with pytest.raises(ValueError, match="no candidate"):
        greedy([], lambda m: 0.0)
