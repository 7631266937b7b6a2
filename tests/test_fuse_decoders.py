"""Decoder, seq2seq and encoder models through `basefuse fuse`: each output must load with its transformers class and
compute exactly what a merge done in torch computes (the mean of the sources' state dicts, written in this test).

Tiny models are made from configs; each "finetune" is the base plus seeded noise on every float tensor (a
classification finetune also gets its own random head)."""
from __future__ import annotations

import json

import pytest
import torch
import transformers as tf

from basefuse.errors import BasefuseError
from basefuse.fusion.api import fuse

N_SOURCES = 3


def _decoder_configs() -> dict[str, tuple[type, object]]:
    small = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64)
    return {
        "llama": (tf.LlamaForCausalLM, tf.LlamaConfig(**small, tie_word_embeddings=False)),
        "mistral": (tf.MistralForCausalLM, tf.MistralConfig(**small, tie_word_embeddings=False)),
        "qwen2-tied": (tf.Qwen2ForCausalLM, tf.Qwen2Config(**small, tie_word_embeddings=True)),
        "gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64)),
        "t5": (tf.T5ForConditionalGeneration, tf.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                          num_heads=4, tie_word_embeddings=False,
                                                          decoder_start_token_id=0)),
    }


def _noisy_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.004 * torch.randn(p.shape, generator=g))
    return model


def _make_pool(tmp_path, cls, config) -> tuple[str, list[str]]:
    torch.manual_seed(0)
    base = cls(config).eval()
    base.generation_config.max_new_tokens = 7  # something of the base's own to be copied
    base.save_pretrained(tmp_path / "base")
    sources = []
    for i in range(N_SOURCES):
        m = _noisy_copy(cls.from_pretrained(tmp_path / "base"), seed=100 + i)
        m.save_pretrained(tmp_path / f"ft{i}")
        sources.append(str(tmp_path / f"ft{i}"))
    return str(tmp_path / "base"), sources


def _torch_mean(cls, paths: list[str], like: str) -> torch.nn.Module:
    """The reference merge: every float tensor of the state dict averaged over the sources."""
    models = [cls.from_pretrained(p) for p in paths]
    states = [m.state_dict() for m in models]
    merged = {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
              for k, v in states[0].items()}
    ref = cls.from_pretrained(like)
    ref.load_state_dict(merged)
    return ref.eval()


def _same_outputs(cls, out: str, ref: torch.nn.Module, seq2seq: bool) -> None:
    fused = cls.from_pretrained(out).eval()
    ids = torch.tensor([[3, 9, 27, 5, 11, 2]])
    with torch.no_grad():
        kw = {"decoder_input_ids": torch.tensor([[0, 4, 8]])} if seq2seq else {}
        a, b = fused(input_ids=ids, **kw).logits, ref(input_ids=ids, **kw).logits
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        gen = dict(max_new_tokens=5, do_sample=False)
        assert fused.generate(ids, **gen).tolist() == ref.generate(ids, **gen).tolist()


@pytest.mark.parametrize("name", list(_decoder_configs()))
def test_language_model_head_is_fused_like_the_body(tmp_path, cli, name):
    cls, config = _decoder_configs()[name]
    base, sources = _make_pool(tmp_path, cls, config)
    code, _, err = cli(["fuse", *sources, "--base", base, "-o", tmp_path / "out", "--no-progress"])
    assert code == 0, err
    _same_outputs(cls, str(tmp_path / "out"), _torch_mean(cls, sources, base), seq2seq=name == "t5")
    manifest = json.loads((tmp_path / "out" / "fusion.json").read_text())
    assert not [d for d in manifest["dropped_keys"] if d["reason"] == "head"]
    gen = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    assert gen["max_new_tokens"] == 7  # the base's, copied


def test_causal_lm_without_base_keeps_its_class(tmp_path):
    cls, config = _decoder_configs()["llama"]
    _, sources = _make_pool(tmp_path, cls, config)
    manifest = fuse(sources, tmp_path / "out", progress=False)
    assert manifest["lm_head_keys"] == ["lm_head.weight"]
    out_cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert out_cfg["architectures"] == ["LlamaForCausalLM"]
    _same_outputs(cls, str(tmp_path / "out"), _torch_mean(cls, sources, sources[0]), seq2seq=False)


@pytest.mark.parametrize("name", ["bert", "roberta"])
def test_encoder_task_heads_are_dropped(tmp_path, cli, name):
    config = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig}[name](
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=3)
    body_cls, head_cls = {"bert": (tf.BertModel, tf.BertForSequenceClassification),
                          "roberta": (tf.RobertaModel, tf.RobertaForSequenceClassification)}[name]
    torch.manual_seed(0)
    body_cls(config, add_pooling_layer=False).save_pretrained(tmp_path / "base")
    sources = []
    for i in range(N_SOURCES):
        torch.manual_seed(10 + i)  # each finetune's own classifier
        m = _noisy_copy(head_cls.from_pretrained(tmp_path / "base", num_labels=3), seed=100 + i)
        m.save_pretrained(tmp_path / f"ft{i}")
        sources.append(str(tmp_path / f"ft{i}"))
    code, _, err = cli(["fuse", *sources, "--base", tmp_path / "base", "-o", tmp_path / "out", "--no-progress"])
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "fusion.json").read_text())
    heads = {d["key"] for d in manifest["dropped_keys"] if d["reason"] == "head"}
    assert {"classifier.out_proj.weight" if name == "roberta" else "classifier.weight"} <= heads
    assert manifest["lm_head_keys"] == []
    # reference: the bodies of the sources averaged into the base's body class
    states = [head_cls.from_pretrained(p).state_dict() for p in sources]
    prefix = name + "."
    ref = body_cls.from_pretrained(tmp_path / "base").eval()
    own = ref.state_dict()
    merged = {k: (sum(s[prefix + k].double() for s in states) / N_SOURCES).to(v.dtype)
              if v.is_floating_point() and prefix + k in states[0] else v for k, v in own.items()}
    ref.load_state_dict(merged)
    fused = tf.AutoModel.from_pretrained(tmp_path / "out").eval()
    ids = torch.tensor([[3, 9, 27, 5, 11, 2]])
    with torch.no_grad():
        torch.testing.assert_close(fused(input_ids=ids).last_hidden_state, ref(input_ids=ids).last_hidden_state,
                                   atol=1e-5, rtol=1e-5)


def test_another_vocabulary_is_refused_with_the_token_counts(tmp_path):
    cls, config = _decoder_configs()["llama"]
    base, sources = _make_pool(tmp_path, cls, config)
    grown = cls.from_pretrained(sources[1])
    grown.resize_token_embeddings(66)  # two added special tokens
    grown.save_pretrained(tmp_path / "grown")
    with pytest.raises(BasefuseError, match=r"vocabularies differ \(\S*ft0 has 64 tokens, \S*grown has 66 tokens"):
        fuse([sources[0], str(tmp_path / "grown")], tmp_path / "out", base=base, progress=False)
    assert not (tmp_path / "out").exists()


def test_tokenizer_base_fuses_on_the_base_vocabulary(tmp_path, cli):
    """Two sources with 2 added tokens, one without, and a base with 1 added token: the output has the base's 65
    rows; rows 0-63 (those every model has) are the sources' mean, row 64 is the base's own; the sources' extra
    rows are dropped. Reference written here with torch."""
    cls, config = _decoder_configs()["llama"]
    base, sources = _make_pool(tmp_path, cls, config)
    grown = []
    for i, src in enumerate(sources[:2]):
        m = cls.from_pretrained(src)
        m.resize_token_embeddings(66, mean_resizing=False)
        m.save_pretrained(tmp_path / f"grown{i}")
        grown.append(str(tmp_path / f"grown{i}"))
    b = cls.from_pretrained(base)
    b.resize_token_embeddings(65, mean_resizing=False)
    b.save_pretrained(tmp_path / "base65")
    code, _, err = cli(["fuse", *grown, sources[2], "--base", tmp_path / "base65", "-o", tmp_path / "refused",
                        "--no-progress"])
    assert code == 2 and "--tokenizer base" in err and "66 tokens" in err
    code, _, err = cli(["fuse", *grown, sources[2], "--base", tmp_path / "base65", "-o", tmp_path / "out",
                        "--tokenizer", "base", "--no-progress"])
    assert code == 0, err
    states = [cls.from_pretrained(p).state_dict() for p in [*grown, sources[2]]]
    own = cls.from_pretrained(tmp_path / "base65").state_dict()
    fused = cls.from_pretrained(tmp_path / "out").state_dict()
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        want = own[key].clone()
        want[:64] = (sum(s[key][:64].double() for s in states) / 3).float()
        torch.testing.assert_close(fused[key], want)
    key = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(fused[key], (sum(s[key].double() for s in states) / 3).float())
    manifest = json.loads((tmp_path / "out" / "fusion.json").read_text())
    assert manifest["vocab_rows"]["lm_head.weight"] == {"rows_fused": 64, "rows": 65}
