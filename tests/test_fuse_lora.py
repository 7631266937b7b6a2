"""LoRA adapters as fusion sources: merged into the base on the fly, then fused. The reference is PEFT's own
`merge_and_unload` of each adapter (an independent implementation), averaged in torch."""
from __future__ import annotations

import json

import pytest
import torch
import transformers as tf

peft = pytest.importorskip("peft")

from basefuse.errors import BasefuseError  # noqa: E402
from basefuse.fusion.api import fuse  # noqa: E402

TINY_LLAMA = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)


def _adapter(base_dir, out, cls, seed: int, **lora) -> str:
    torch.manual_seed(seed)
    model = peft.get_peft_model(cls.from_pretrained(base_dir), peft.LoraConfig(init_lora_weights=False, **lora))
    with torch.no_grad():  # init_lora_weights=False draws both factors at full scale: keep the update finetune-sized
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.mul_(0.1)
    model.save_pretrained(out)
    return str(out)


def _merged_state(base_dir, adapter_dir, cls) -> dict[str, torch.Tensor]:
    model = peft.PeftModel.from_pretrained(cls.from_pretrained(base_dir), adapter_dir)
    return model.merge_and_unload().state_dict()


def _check_same(cls, out, states, base_dir, ids=torch.tensor([[3, 9, 27, 5, 11, 2]])):
    merged = {k: (sum(s[k].double() for s in states) / len(states)).float() for k in states[0]}
    ref = cls.from_pretrained(base_dir).eval()
    ref.load_state_dict(merged, strict=False)
    fused = cls.from_pretrained(out).eval()
    for k, v in fused.state_dict().items():
        torch.testing.assert_close(v, ref.state_dict()[k], atol=2e-6, rtol=1e-5, msg=lambda m: f"{k}: {m}")
    with torch.no_grad():
        torch.testing.assert_close(fused(input_ids=ids).logits, ref(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def test_lora_adapters_and_a_full_finetune_fuse_like_their_merged_models(tmp_path, cli):
    cls = tf.LlamaForCausalLM
    torch.manual_seed(0)
    cls(tf.LlamaConfig(**TINY_LLAMA)).save_pretrained(tmp_path / "base")
    base = tmp_path / "base"
    a1 = _adapter(base, tmp_path / "a1", cls, 1, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    a2 = _adapter(base, tmp_path / "a2", cls, 2, r=2, lora_alpha=4, use_rslora=True,
                  target_modules=["o_proj", "down_proj", "embed_tokens"], alpha_pattern={"down_proj": 16})
    torch.manual_seed(3)
    full = cls.from_pretrained(base)
    with torch.no_grad():
        for p in full.parameters():
            p.add_(0.004 * torch.randn_like(p))
    full.save_pretrained(tmp_path / "full")
    code, _, err = cli(["fuse", a1, a2, tmp_path / "full", "--base", base, "-o", tmp_path / "out", "--no-progress"])
    assert code == 0, err
    states = [_merged_state(base, a1, cls), _merged_state(base, a2, cls), full.state_dict()]
    _check_same(cls, tmp_path / "out", states, base)
    manifest = json.loads((tmp_path / "out" / "fusion.json").read_text())
    assert manifest["sources"][0]["lora_adapter"]["tensors_changed"] == 4  # q and v of 2 layers
    assert manifest["sources"][1]["lora_adapter"]["tensors_changed"] == 5  # o, down of 2 layers + embeddings
    assert manifest["sources"][1]["lora_adapter"]["left_out"] == []  # its saved embedding is the layer it wraps
    assert "same name as --base" in manifest["sources"][0]["lora_adapter"]["base_check"]


def test_gpt2_conv1d_adapter_and_a_classifier_left_out(tmp_path):
    cls = tf.GPT2LMHeadModel
    torch.manual_seed(0)
    cls(tf.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64)).save_pretrained(tmp_path / "b")
    a1 = _adapter(tmp_path / "b", tmp_path / "a1", cls, 1, r=4, lora_alpha=8, target_modules=["c_attn"],
                  fan_in_fan_out=True)
    a2 = _adapter(tmp_path / "b", tmp_path / "a2", cls, 2, r=4, lora_alpha=8, target_modules=["c_proj"],
                  fan_in_fan_out=True)
    fuse([a1, a2], tmp_path / "out", base=tmp_path / "b", progress=False)
    _check_same(cls, tmp_path / "out", [_merged_state(tmp_path / "b", a, cls) for a in (a1, a2)], tmp_path / "b")

    bert = dict(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    tf.BertModel(tf.BertConfig(**bert), add_pooling_layer=False).save_pretrained(tmp_path / "bb")
    heads = [_adapter(tmp_path / "bb", tmp_path / f"c{i}", tf.BertForSequenceClassification, i, r=2, lora_alpha=4,
                      target_modules=["query", "value"], task_type="SEQ_CLS") for i in (1, 2)]
    manifest = fuse(heads, tmp_path / "bout", base=tmp_path / "bb", progress=False)
    left = manifest["sources"][0]["lora_adapter"]["left_out"]
    assert sorted(left) == ["base_model.model.classifier.modules_to_save.bias",
                            "base_model.model.classifier.modules_to_save.weight"] or \
        sorted(k.replace(".modules_to_save", "") for k in left) == ["base_model.model.classifier.bias",
                                                                     "base_model.model.classifier.weight"]


def test_lora_refusals(tmp_path):
    cls = tf.LlamaForCausalLM
    torch.manual_seed(0)
    cls(tf.LlamaConfig(**TINY_LLAMA)).save_pretrained(tmp_path / "base")
    torch.manual_seed(1)
    cls(tf.LlamaConfig(**TINY_LLAMA)).save_pretrained(tmp_path / "other")
    a1 = _adapter(tmp_path / "base", tmp_path / "a1", cls, 1, r=4, lora_alpha=8, target_modules=["q_proj"])
    a2 = _adapter(tmp_path / "base", tmp_path / "a2", cls, 2, r=4, lora_alpha=8, target_modules=["q_proj"])
    with pytest.raises(BasefuseError, match="LoRA adapter .* pass --base"):
        fuse([a1, a2], tmp_path / "o1", progress=False)
    with pytest.raises(BasefuseError, match="trained on .*base, whose weights differ from --base"):
        fuse([a1, a2], tmp_path / "o2", base=tmp_path / "other", progress=False)
    dora = _adapter(tmp_path / "base", tmp_path / "dora", cls, 3, r=4, lora_alpha=8, target_modules=["q_proj"],
                    use_dora=True)
    with pytest.raises(BasefuseError, match="use_dora=True is not supported"):
        fuse([a1, dora], tmp_path / "o3", base=tmp_path / "base", progress=False)
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))


def test_an_adapter_where_a_whole_model_is_needed_says_what_it_is(tmp_path, cli):
    cls = tf.LlamaForCausalLM
    torch.manual_seed(0)
    cls(tf.LlamaConfig(**TINY_LLAMA)).save_pretrained(tmp_path / "base")
    a1 = _adapter(tmp_path / "base", tmp_path / "a1", cls, 1, r=4, lora_alpha=8, target_modules=["q_proj"])
    code, _, err = cli(["inspect", a1, "--base", tmp_path / "base"])
    assert code == 2 and "a LoRA adapter, not a whole model" in err
