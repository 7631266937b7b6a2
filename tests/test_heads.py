"""What counts as a head comes from transformers' model classes, asked once per machine and remembered."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import transformers  # noqa: F401  (loaded: the in-process tests below ask it directly)

from basefuse.checkpoints import heads


def test_the_fusing_process_asks_in_a_child_and_stays_lean(tmp_path):
    env = dict(os.environ, BASEFUSE_CACHE=str(tmp_path))
    code = ("import sys; from basefuse.checkpoints.heads import class_facts; f = class_facts('llama'); "
            "print(f.prefix, 'LlamaForCausalLM' in f.language_model_classes, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    # LlamaModel.base_model_prefix is 'model'; the process that asked never loaded transformers (nor torch)
    assert done.stdout.split() == ["model", "True", "False"]
    stored = next((tmp_path / "model-classes").glob("transformers-*.json"))
    assert json.loads(stored.read_text())["prefix"]["llama"] == "model"


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path))
    heads._MEMO.clear()
    yield tmp_path
    heads._MEMO.clear()


def test_prefixes_are_the_model_classes_own(fresh):
    # known by hand: GPT2Model 'transformer', BertModel 'bert', XLMRobertaModel 'roberta', T5Model 'transformer'
    got = {t: heads.class_facts(t).prefix for t in ("gpt2", "bert", "xlm-roberta", "t5", "no-such-type")}
    assert got == {"gpt2": "transformer", "bert": "bert", "xlm-roberta": "roberta", "t5": "transformer",
                   "no-such-type": None}
    lm = heads.class_facts("bert").language_model_classes
    assert {"BertForMaskedLM", "GPT2LMHeadModel", "T5ForConditionalGeneration"} <= lm
    assert "BertForSequenceClassification" not in lm


def test_the_remembered_answer_is_used(fresh):
    heads.class_facts("bert")
    stored = next((fresh / "model-classes").glob("transformers-*.json"))
    data = json.loads(stored.read_text())
    data["prefix"]["bert"] = "remembered"  # not transformers' answer: only the cache can give it
    stored.write_text(json.dumps(data))
    heads._MEMO.clear()
    assert heads.class_facts("bert").prefix == "remembered"
