"""Hub-ready output against a real local Hub: `tests/hub_server.py` runs as its own process, `HF_ENDPOINT` points at
it, and huggingface_hub's own upload and download code talks to it over HTTP (Xet off, so large files take the LFS
"basic" path, which the server implements). The finetunes are uploaded there, fused as `org/name@revision`, the
result pushed with `--push-to-hub`, then downloaded again with `snapshot_download` and compared."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from builders import keyword_rows, make_family, write_csv
from hub_server import TOKEN, run, running_hub



@pytest.fixture
def hub(tmp_path):
    """A running local Hub: (its URL, the environment a child process needs to use it)."""
    with running_hub(tmp_path) as found:
        yield found


def upload(folder: Path, repo: str, env: dict) -> str:
    """Put a local model on the local Hub with huggingface_hub itself; returns the commit."""
    code = ("import sys; from huggingface_hub import HfApi; api = HfApi(); api.create_repo(sys.argv[2], exist_ok=True);"
            " print(api.upload_folder(repo_id=sys.argv[2], folder_path=sys.argv[1]).oid)")
    done = run(["-c", code, folder, repo], env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def server_json(url: str, path: str) -> dict:
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def card_meta(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_fuse_hub_revisions_push_and_read_back(tmp_path, hub):
    url, env = hub
    base, srcs = make_family(tmp_path / "local", 3, "bert", labels=(2, 3, 5))
    (base / "README.md").write_text("---\nlicense: mit\n---\n# tiny base\n")
    commits = {name: upload(folder, f"org/{name}", env)
               for name, folder in [("base", base), *((f"ft{i}", s) for i, s in enumerate(srcs))]}
    # a second commit on ft1's main: asking for the first one must fuse the first one
    (srcs[1] / "notes.txt").write_text("later")
    later = upload(srcs[1], "org/ft1", env)
    assert later != commits["ft1"]

    out = tmp_path / "fused"
    done = run(["-m", "basefuse", "fuse", "org/ft0@main", f"org/ft1@{commits['ft1']}", "org/ft2",
                "--base", "org/base@main", "--out", out, "--no-progress", "--push-to-hub", "org/fused",
                "--private"], env)
    assert done.returncode == 0, done.stderr
    assert "pushed" in done.stdout and "org/fused" in done.stdout

    manifest = json.loads((out / "fusion.json").read_text())
    got = {e["hub_id"]: (e["revision"], e["commit"]) for e in [*manifest["sources"], manifest["base"]]}
    assert got == {"org/ft0": ("main", commits["ft0"]), "org/ft1": (commits["ft1"], commits["ft1"]),
                   "org/ft2": (None, commits["ft2"]), "org/base": ("main", commits["base"])}

    card = (out / "README.md").read_text()
    meta = card_meta(card)
    assert meta["base_model"] == ["org/ft0", "org/ft1", "org/ft2", "org/base"]
    assert meta["base_model_relation"] == "merge" and meta["library_name"] == "transformers"
    assert meta["license"] == "mit" and {"merge", "basefuse"} <= set(meta["tags"])
    assert str(tmp_path) not in card and "/snapshots/" not in card
    assert (f"basefuse fuse org/ft0@{commits['ft0']} org/ft1@{commits['ft1']} org/ft2@{commits['ft2']} "
            f"--base org/base@{commits['base']} --method average") in card
    assert 'AutoModel.from_pretrained("org/fused")' in card

    # the Hub holds it, private, and gives it back: same files, and weights that are the sources' body mean
    assert server_json(url, "/api/models/org/fused")["private"] is True
    from huggingface_hub import snapshot_download

    back = Path(snapshot_download("org/fused", endpoint=url, token=TOKEN, cache_dir=tmp_path / "dl"))
    assert sorted(p.name for p in back.iterdir()) == sorted(manifest["files"])
    assert (back / "README.md").read_text() == card
    published = (back / "fusion.json").read_text()  # local paths are left out of what is published
    assert str(tmp_path) not in published and "/snapshots/" not in published
    assert [e["path"] for e in json.loads(published)["sources"]] == [
        f"org/ft{i}@{commits[f'ft{i}']}" for i in range(3)]
    assert str(tmp_path) in (out / "fusion.json").read_text()  # the local copy keeps them: history follows them
    fused = load_file(str(back / "model.safetensors"))
    ft = [load_file(str(s / "model.safetensors")) for s in srcs]
    for key in ("encoder.layer.0.attention.self.query.weight", "embeddings.word_embeddings.weight"):
        want = (ft[0]["bert." + key] + ft[1]["bert." + key] + ft[2]["bert." + key]) / 3
        torch.testing.assert_close(fused[key], want)
    from transformers import AutoModel

    model = AutoModel.from_pretrained(back)
    torch.testing.assert_close(model.state_dict()["encoder.layer.0.attention.self.query.weight"],
                               fused["encoder.layer.0.attention.self.query.weight"])


def test_push_refused_token_is_one_line_and_output_stays(tmp_path, hub):
    _, env = hub
    _, srcs = make_family(tmp_path, 2, "bert", labels=(2, 3))
    out = tmp_path / "fused"
    done = run(["-m", "basefuse", "fuse", *srcs, "--out", out, "--no-progress", "--push-to-hub", "org/x"],
               {**env, "HF_TOKEN": "hf_wrong"})
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()
    assert len(last) == 1 and "refused the token" in last[0] and f"hf upload org/x {out}" in last[0]
    assert (out / "model.safetensors").is_file() and (out / "fusion.json").is_file()


def test_push_without_token_fails_before_fusing(tmp_path, cli, monkeypatch):
    _, srcs = make_family(tmp_path, 2, "bert", labels=(2, 3))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "fused"
    code, _, err = cli(["fuse", *srcs, "--out", out, "--no-progress", "--push-to-hub", "org/x"])
    assert code == 2 and "no Hugging Face token" in err and "HF_TOKEN" in err
    assert not out.exists()
    code, _, err = cli(["fuse", *srcs, "--out", out, "--no-progress", "--push-to-hub", "org/bad name"])
    assert code == 2 and "not a Hub repo id" in err and not out.exists()
    code, _, err = cli(["fuse", *srcs, "--out", out, "--no-progress", "--private"])
    assert code == 2 and "--private only applies with --push-to-hub" in err and not out.exists()


@pytest.mark.slow  # a real (short) finetune of the tiny model
def test_finetune_save_card_and_push(tmp_path, hub):
    url, env = hub
    base, _ = make_family(tmp_path / "local", 1, "bert", labels=(2,))
    (base / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    commit = upload(base, "org/tiny", env)
    task = write_csv(tmp_path / "kw.csv", keyword_rows(120, 0), header=("sentence", "y"))
    out = tmp_path / "run"
    done = run(["-m", "basefuse", "finetune", "--model", "org/tiny", "--task", task, "--seed", "3", "--out", out,
                "--save", "--text-col", "sentence", "--label-col", "y", "--epochs", "1", "--min-steps", "2",
                "--batch-size", "16", "--max-length", "16", "--no-progress", "--push-to-hub", "org/tiny-kw"], env)
    assert done.returncode == 0, done.stderr
    card = (out / "model" / "README.md").read_text()
    meta = card_meta(card)
    assert meta["base_model"] == "org/tiny" and meta["base_model_relation"] == "finetune"
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "text-classification"
    assert str(tmp_path) not in card
    assert f"`org/tiny@{commit}` finetuned on `kw.csv`" in card
    assert f"basefuse finetune --model org/tiny@{commit} --task kw.csv --seed 3" in card  # pinned: --model takes it
    assert "--batch-size 16" in card and "--max-length 16" in card and "--lr" not in card
    from huggingface_hub import snapshot_download

    back = Path(snapshot_download("org/tiny-kw", endpoint=url, token=TOKEN, cache_dir=tmp_path / "dl"))
    assert (back / "README.md").read_text() == card
    want, got = load_file(str(out / "model" / "model.safetensors")), load_file(str(back / "model.safetensors"))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
