"""The real built-in tasks and model, fetched from PyPI (slow; needs the registry or a warm cache)."""
from __future__ import annotations

import pytest

from basefuse.data.api import list_builtin_tasks, load_task
from basefuse.data.builtin import load_builtin_frame

# n and classes after dedup by text / drop empty, from shared/OFFLINE_DATA.md
EXPECTED = {"rotten_tomatoes": (12752, 2), "vader_amazon": (3600, 2), "vader_nyt": (4884, 2),
            "crowdflower_twitter_sentiment": (37243, 3), "vader_tweets": (4196, 2),
            "trump_tweet_device": (8594, 2), "trec_coarse": (5381, 6), "sms_spam": (4522, 2),
            "bbc_news": (2127, 5)}


@pytest.mark.slow
def test_all_builtin_tasks_have_the_documented_counts():
    assert {i.name: (i.size, i.num_classes) for i in list_builtin_tasks()} == EXPECTED
    for name, (n, k) in EXPECTED.items():
        df = load_builtin_frame(name)
        assert (len(df), df["label"].nunique()) == (n, k), name
        task = load_task(name)
        assert len(task.train) + len(task.validation) + len(task.test) == n
        assert task.num_labels == k
        assert len(task.test) == min(1000, round(n * 0.1))
        assert len(task.fingerprint) == 64


@pytest.mark.slow
def test_builtin_minilm_loads():
    from transformers import AutoModelForSequenceClassification

    from basefuse.models import resolve_model

    model = AutoModelForSequenceClassification.from_pretrained(resolve_model("minilm"), num_labels=6)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    assert 22_000_000 < sum(p.numel() for p in model.parameters()) < 23_000_000
