"""The shipped pool configs say what their comments say (no model needed: configs and pure planning views)."""
from __future__ import annotations

from basefuse.experiments.config import builtin_config_path, load_experiment_config
from basefuse.experiments.protocol import selection_pools

TASKS = ["rotten_tomatoes", "vader_amazon", "vader_nyt", "crowdflower_twitter_sentiment", "vader_tweets",
         "trump_tweet_device", "trec_coarse", "sms_spam", "bbc_news"]


def test_recycle_cpu_probes_on_two_tasks_and_leaves_each_target_six_candidates():
    cfg = load_experiment_config(builtin_config_path("recycle-cpu"))
    assert cfg.selection.probe == ["vader_amazon", "bbc_news"] and cfg.evaluation == "linear_probe"
    assert cfg.target_names() == [t for t in TASKS if t not in ("vader_amazon", "bbc_news")]
    pools = selection_pools(cfg)
    for target, pool in pools.items():
        own = "ft_crowdflower" if target == "crowdflower_twitter_sentiment" else f"ft_{target}"
        expected = {c for c in cfg.checkpoints() if c not in (own, "ft_vader_amazon", "ft_bbc_news")}
        assert set(pool) == expected and len(pool) == 6, target


def test_paper_probe_cpu_is_the_paper_protocol_over_the_saved_pool():
    cfg = load_experiment_config(builtin_config_path("paper-probe-cpu"))
    assert cfg.target_names() == TASKS and cfg.seeds == [0, 1, 2, 3, 4] and cfg.evaluation == "linear_probe"
    declared = {t for c in cfg.checkpoints().values() for t in cfg.trained_on(c.name)}
    assert declared == set(TASKS)
    for t in TASKS:  # the pool family of each target is its own family
        fam = cfg.family_of(t)
        assert any(t in cfg.trained_on(c) for c in cfg.source_names(fam))
