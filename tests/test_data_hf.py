"""Hugging Face sources: save_to_disk folders, `hf:` through datasets.load_dataset, offline errors."""
from __future__ import annotations

import pandas as pd
import pytest

from basefuse.data import hf as H
from basefuse.data.api import load_task
from basefuse.errors import BasefuseError


@pytest.fixture(autouse=True)
def _isolated_caches(isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hfcache"))


def glue_like():
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    feats = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]),
                      "idx": Value("int32")})
    n = 40
    train = Dataset.from_dict({"sentence": [f"s{i}" for i in range(n)], "label": [i % 2 for i in range(n)],
                               "idx": list(range(n))}, features=feats)
    val = Dataset.from_dict({"sentence": ["v0", "v1"], "label": [0, 1], "idx": [0, 1]}, features=feats)
    test = Dataset.from_dict({"sentence": ["h0", "h1"], "label": [-1, -1], "idx": [0, 1]}, features=feats)
    return DatasetDict({"train": train, "validation": val, "test": test})


def test_save_to_disk_dict_uses_class_names_and_skips_hidden_test(tmp_path):
    glue_like().save_to_disk(str(tmp_path / "sst"))
    t = load_task(str(tmp_path / "sst"), text_col="sentence")
    assert t.label_names == ["negative", "positive"]
    assert list(t.validation["text"]) == ["v0", "v1"]
    assert t.extra["hidden_label_splits"] == ["test"]
    assert t.extra["split_origin"]["test"] == "carved from train"
    assert len(t.train) + len(t.test) == 40
    assert t.source.startswith("disk:")


def test_save_to_disk_single_dataset(tmp_path):
    glue_like()["train"].save_to_disk(str(tmp_path / "one"))
    t = load_task(str(tmp_path / "one"), text_col="sentence")
    assert len(t.train) + len(t.validation) + len(t.test) == 40


def test_hf_prefix_refuses_a_local_folder_of_data_files(tmp_path):
    # datasets would scan the folder recursively; a local folder is given without hf:
    d = tmp_path / "mydata"
    d.mkdir()
    pd.DataFrame({"text": [f"x{i}" for i in range(30)], "label": ["u" if i % 2 else "v" for i in range(30)]}) \
        .to_csv(d / "train.csv", index=False)
    with pytest.raises(BasefuseError, match=r"not a Hugging Face dataset id.*without hf:"):
        load_task(f"hf:{d}")
    assert load_task(str(d)).label_names == ["u", "v"]


def test_hf_missing_column_names_split(tmp_path):
    glue_like().save_to_disk(str(tmp_path / "sst"))
    with pytest.raises(BasefuseError, match=r"column 'text' not found in .*split 'train'.*available: sentence, label, idx"):
        load_task(str(tmp_path / "sst"))


def test_parse_hf_spec():
    assert H.parse_hf_spec("hf:glue/sst2") == ("glue", "sst2")
    assert H.parse_hf_spec("hf:imdb") == ("imdb", None)
    assert H.parse_hf_spec("hf:cardiffnlp/tweet_eval/emotion") == ("cardiffnlp/tweet_eval", "emotion")
    with pytest.raises(BasefuseError):
        H.parse_hf_spec("hf:")


def test_offline_hub_is_one_clear_error(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'glue' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(BasefuseError, match=r"cannot load Hugging Face dataset 'hf:glue/sst2'.*network") as e:
        load_task("hf:glue/sst2")
    assert "\n" not in str(e.value)
