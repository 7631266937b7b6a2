"""Checkpoint I/O: safetensors reading/writing, sharded inputs, weights-only .bin, alignment, hub ids."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from basefuse.checkpoints.align import align
from basefuse.checkpoints.source import load_checkpoint, resolve
from basefuse.checkpoints.safetensors_io import (OutTensor, StreamingWriter, bf16_to_f32, f32_to_bf16,
                                                 read_header)
from basefuse.errors import BasefuseError


def _folder(p: Path, tensors: dict, model_type: str = "bert") -> Path:
    p.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(p / "model.safetensors"))
    (p / "config.json").write_text(json.dumps({"model_type": model_type}))
    return p


def test_bf16_roundtrip_matches_torch():
    x = torch.randn(1000) * 100
    x[0], x[1] = float("inf"), float("nan")
    ours = f32_to_bf16(x.numpy())
    theirs = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours[2:], theirs[2:]) and np.isinf(bf16_to_f32(ours[:1])).all()
    assert np.isnan(bf16_to_f32(ours[1:2])).all()
    back = bf16_to_f32(theirs)
    assert np.array_equal(back, x.to(torch.bfloat16).float().numpy(), equal_nan=True)


def test_bf16_conversions_equal_torch_on_every_bf16_pattern_and_rounding_case():
    """Every one of the 65,536 bf16 bit patterns, with 12 low halves each (ties to even and odd, just above and
    below a tie, carries into the exponent up to Inf, every NaN payload, subnormals, -0): torch's own casts are
    the reference. A float32 NaN stays NaN: basefuse writes 0x7FC0 (as before), torch's CPU cast 0xFFFF, both
    NaN."""
    high = np.arange(1 << 16, dtype=np.uint32) << 16
    low = np.array([0, 1, 0x3FFF, 0x7FFF, 0x8000, 0x8001, 0xBFFF, 0xC000, 0xFFFE, 0xFFFF, 0x1234, 0x9ABC],
                   dtype=np.uint32)
    x = (high[:, None] | low[None, :]).reshape(-1).view(np.float32)
    theirs = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    ours = f32_to_bf16(x)
    nan = np.isnan(x)
    assert ours.dtype == np.uint16 and ours.shape == x.shape and 0 < nan.sum() < x.size
    assert np.array_equal(ours[~nan], theirs[~nan])
    assert np.all(ours[nan] == 0x7FC0) and np.all((theirs[nan] & 0x7FFF) > 0x7F80)  # NaN on both sides
    assert np.array_equal(f32_to_bf16(x.reshape(-1, 96)), ours.reshape(-1, 96))  # shape kept, values too
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    widened = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).float().numpy()
    assert np.array_equal(bf16_to_f32(bits).view(np.uint32), widened.view(np.uint32))  # NaN payloads kept too


def test_reads_ranges_of_every_dtype(tmp_path):
    t = {"a": torch.arange(24, dtype=torch.float32).reshape(4, 6), "b": torch.arange(5, dtype=torch.int64),
         "c": torch.linspace(-1, 1, 7).to(torch.bfloat16), "d": torch.linspace(-1, 1, 7).half()}
    ck = load_checkpoint(_folder(tmp_path / "m", t))
    assert ck.tensors["a"].shape == (4, 6) and ck.tensors["c"].dtype == "BF16"
    assert np.array_equal(ck.read("a", 5, 9), np.arange(5, 9, dtype=np.float32))
    assert np.array_equal(ck.read("b"), np.arange(5))
    assert np.array_equal(bf16_to_f32(ck.read("c")), t["c"].float().numpy())
    assert np.array_equal(ck.read("d"), t["d"].numpy())
    ck.close()


def test_writer_sharded_output_reads_back_with_safetensors(tmp_path):
    tensors = {f"t{i}": np.random.default_rng(i).normal(size=(i + 1, 3)).astype(np.float32) for i in range(5)}
    plan = [OutTensor(k, "F32", v.shape) for k, v in tensors.items()]
    w = StreamingWriter(tmp_path, plan, shard_size=40)
    for k, v in tensors.items():
        w.begin(k)
        flat = v.reshape(-1)
        w.write(flat[:2])
        w.write(flat[2:])
    files = w.close()
    assert "model.safetensors.index.json" in files and len(files) > 2
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(tensors)
    for k, v in tensors.items():
        with safe_open(str(tmp_path / index["weight_map"][k]), "np") as f:
            assert np.array_equal(f.get_tensor(k), v)


def test_writer_refuses_out_of_order(tmp_path):
    w = StreamingWriter(tmp_path, [OutTensor("a", "F32", (2,)), OutTensor("b", "F32", (2,))])
    with pytest.raises(RuntimeError):
        w.begin("b")


def test_sharded_input(tmp_path):
    from builders import save_base, save_finetune

    base = save_base(tmp_path / "base")
    ft = save_finetune(tmp_path / "ft", base, 3, seed=1, max_shard_size="20KB")
    assert (ft / "model.safetensors.index.json").exists()
    ck = load_checkpoint(ft)
    assert len(ck.files) > 3 and "classifier.weight" in ck.tensors and ck.prefix == "bert"


def test_missing_shard_is_an_error(tmp_path):
    from builders import save_base, save_finetune

    base = save_base(tmp_path / "base")
    ft = save_finetune(tmp_path / "ft", base, 3, seed=1, max_shard_size="20KB")
    shard = sorted(ft.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(BasefuseError, match=f"{shard.name}.*missing"):
        load_checkpoint(ft)


@pytest.mark.parametrize("cut", [4, 30, -10])
def test_truncated_safetensors(tmp_path, cut):
    p = _folder(tmp_path / "m", {"a": torch.zeros(100)})
    data = (p / "model.safetensors").read_bytes()
    (p / "model.safetensors").write_bytes(data[:cut])
    with pytest.raises(BasefuseError, match="model.safetensors.*(truncated|corrupt)"):
        load_checkpoint(p)


def test_corrupt_header(tmp_path):
    p = _folder(tmp_path / "m", {"a": torch.zeros(100)})
    data = bytearray((p / "model.safetensors").read_bytes())
    data[8:12] = b"\xff\xfe{{"
    (p / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(BasefuseError, match="corrupt"):
        read_header(p / "model.safetensors")


def test_bin_weights_only(tmp_path):
    p = tmp_path / "m"
    p.mkdir()
    torch.save({"bert.x": torch.arange(6.0).reshape(2, 3), "classifier.w": torch.ones(2)}, p / "pytorch_model.bin")
    (p / "config.json").write_text(json.dumps({"model_type": "bert"}))
    ck = load_checkpoint(p)
    assert ck.prefix == "bert" and np.array_equal(ck.read("bert.x", 1, 4), np.arange(1.0, 4.0, dtype=np.float32))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_bin_needing_full_unpickling_is_refused(tmp_path, capsys):
    p = tmp_path / "m"
    p.mkdir()
    torch.save({"x": torch.zeros(2), "evil": Evil()}, p / "pytorch_model.bin")
    (p / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BasefuseError, match="pytorch_model.bin.*full unpickling"):
        load_checkpoint(p)
    assert "pwned" not in capsys.readouterr().out


def test_no_config(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(BasefuseError, match="no config.json"):
        load_checkpoint(tmp_path / "m")


@pytest.mark.parametrize("hub_id", ["nobody-xyz/model", "bert-base-uncased"])  # org/name and legacy bare names
def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path, hub_id):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BasefuseError, match=f"{hub_id}.*hub"):
        resolve(hub_id)


def test_not_a_folder_nor_hub_id(tmp_path):
    with pytest.raises(BasefuseError, match="no such folder"):
        resolve(str(tmp_path / "a" / "b" / "c"))


def test_align_prefix_and_heads(tmp_path):
    body = {"enc.w": torch.zeros(4, 4), "enc.b": torch.zeros(4)}
    a = _folder(tmp_path / "a", {**{f"bert.{k}": v for k, v in body.items()}, "classifier.weight": torch.zeros(2, 4),
                                 "bert.pooler.weight": torch.zeros(4, 4)})
    b = _folder(tmp_path / "b", {**{f"bert.{k}": v for k, v in body.items()}, "classifier.weight": torch.zeros(3, 4)})
    base = _folder(tmp_path / "base", {**body, "pooler.weight": torch.zeros(4, 4)})
    al = align([load_checkpoint(a), load_checkpoint(b)], load_checkpoint(base))
    assert sorted(al.body) == ["enc.b", "enc.w"]
    reasons = {(d.key, d.reason) for d in al.dropped}
    assert ("classifier.weight", "head") in reasons and ("bert.pooler.weight", "not in every source") in reasons


def test_align_body_shape_mismatch(tmp_path):
    a = _folder(tmp_path / "a", {"bert.w": torch.zeros(4, 4)})
    b = _folder(tmp_path / "b", {"bert.w": torch.zeros(8, 8)})
    with pytest.raises(BasefuseError, match="bert.w.*shape"):
        align([load_checkpoint(a), load_checkpoint(b)])


def test_align_model_type_mismatch(tmp_path):
    a = _folder(tmp_path / "a", {"w": torch.zeros(4)}, "bert")
    b = _folder(tmp_path / "b", {"w": torch.zeros(4)}, "gpt2")
    with pytest.raises(BasefuseError, match="model_type 'gpt2'"):
        align([load_checkpoint(a), load_checkpoint(b)])


def test_builtin_model_names_resolve_like_finetune_does(monkeypatch, tmp_path):
    import basefuse.models as models

    monkeypatch.setattr(models, "resolve_model", lambda spec: str(tmp_path / f"extracted-{spec}"))
    assert resolve("minilm") == tmp_path / "extracted-minilm"



def test_view_is_zero_copy_read_only_and_matches_read(tmp_path):
    t = {"a": torch.arange(5000, dtype=torch.float32), "c": torch.linspace(-1, 1, 3000).to(torch.bfloat16)}
    ck = load_checkpoint(_folder(tmp_path / "m", t))
    want = {"a": t["a"].numpy(), "c": t["c"].view(torch.int16).numpy().view(np.uint16)}
    for key, (a, b) in {"a": (1234, 4321), "c": (1, 2999)}.items():
        v = ck.view(key, a, b)
        assert np.array_equal(v, want[key][a:b]) and not v.flags.writeable
        with pytest.raises(ValueError):
            v[0] = 1
    assert ck.view("a", 7, 7).size == 0
    ck.close()


def test_writer_thread_error_reaches_close_and_the_thread_ends(tmp_path, monkeypatch):
    import errno

    from basefuse.checkpoints import safetensors_io

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors_io, "write_all", full)
    w = StreamingWriter(tmp_path, [OutTensor("a", "F32", (4,))])
    w.begin("a")
    try:
        w.write(np.zeros(4, np.float32))
    except OSError:
        pass  # may already surface here, or only at close
    with pytest.raises(OSError, match="No space"):
        w.close()
    assert not w._thread.is_alive()


def test_writer_abort_stops_the_thread(tmp_path):
    w = StreamingWriter(tmp_path, [OutTensor("a", "F32", (4,))])
    w.begin("a")
    w.abort()
    assert not w._thread.is_alive()


def test_hub_id_offline_uses_the_cached_snapshot(monkeypatch, tmp_path):
    import huggingface_hub

    snap = tmp_path / "snap"
    snap.mkdir()

    def fake(repo_id, local_files_only=False, **kw):
        if not local_files_only:
            raise OSError("no network")
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    assert resolve("some-org/model") == snap


def test_writer_error_wakes_a_write_waiting_for_room(tmp_path, monkeypatch):
    """The writer thread fails while the main thread waits for room in the queue: the wait ends in the error."""
    import errno
    import threading

    from basefuse.checkpoints import safetensors_io

    gate = threading.Event()

    def slow_then_full(fd, data):
        gate.wait(5)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors_io, "write_all", slow_then_full)
    monkeypatch.setattr(StreamingWriter, "MAX_IN_FLIGHT", 16)
    w = StreamingWriter(tmp_path, [OutTensor("a", "F32", (40,))])
    w.begin("a")
    w.write(np.zeros(4, np.float32))          # fills the 16-byte budget
    threading.Timer(0.2, gate.set).start()     # the thread then fails on the header write
    with pytest.raises(OSError, match="No space"):
        for _ in range(9):
            w.write(np.zeros(4, np.float32))  # waits for room, then sees the error
    w.abort()
    assert not w._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        w.write(np.zeros(1, np.float32))


def test_hash_prefetch_covers_exactly_the_files_the_checkpoint_is_read_from(tmp_path):
    """The CLI hashes a folder before loading it: the same files `load_checkpoint` lists, not a stray .bin."""
    from basefuse.checkpoints.hashing import Hasher

    folder = _folder(tmp_path / "m", {"w": torch.zeros(3)})
    torch.save({"w": torch.zeros(3)}, folder / "pytorch_model.bin")   # ignored: safetensors comes first
    save_file({"x": torch.zeros(2)}, str(folder / "adapter.safetensors"))
    hasher = Hasher(use_cache=False)
    hasher.submit_folder(folder)
    hasher.submit_folder(tmp_path / "no-such-folder")                 # skipped: loading it reports the error
    try:
        assert set(hasher._jobs) == {f.resolve() for f in load_checkpoint(folder).files}
    finally:
        hasher.close(save=False)
