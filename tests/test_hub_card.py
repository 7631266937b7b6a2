"""The pieces of a Hub-ready card, each against hand-worked values: how inputs are named (never a local absolute
path), hub ids and commits read off the hub cache's layout, `org/name@rev` split, licences, the YAML front matter,
the dtype config.json declares and the command that reproduces a fusion."""
from __future__ import annotations


import yaml

from basefuse.checkpoints.ref import split_revision
from basefuse.checkpoints.source import hub_origin
from basefuse.fusion.api import weights_dtype
from basefuse.fusion.card import reproduce_command
from basefuse.fusion.engine import Item
from basefuse.hub.card import card_name, common_licence, declared_licence, front_matter

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_split_revision_leaves_existing_local_paths_whole(tmp_path):
    assert split_revision("org/name@v1.0") == ("org/name", "v1.0")
    assert split_revision("org/name") == ("org/name", None)
    at = tmp_path / "run@2"
    at.mkdir()
    assert split_revision(str(at)) == (str(at), None)


def test_hub_origin_reads_the_hub_cache_layout(tmp_path):
    snap = tmp_path / "hub" / "models--my-org--tiny-bert" / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    assert hub_origin("my-org/tiny-bert", snap) == ("my-org/tiny-bert", COMMIT)
    plain = tmp_path / "ft0"
    plain.mkdir()
    assert hub_origin(str(plain), plain) == (None, None)
    assert hub_origin("minilm", plain) == ("sentence-transformers/all-MiniLM-L6-v2", None)


def test_card_names_are_hub_ids_or_relative_never_absolute():
    assert card_name("org/a@main", "org/a", COMMIT) == f"org/a@{COMMIT}"
    assert card_name("runs/ft0", None, None) == "runs/ft0"
    assert card_name("/home/alice/runs/ft0", None, None) == "ft0"
    assert card_name("~/runs/ft0", None, None) == "ft0"
    assert card_name("minilm", "sentence-transformers/all-MiniLM-L6-v2", None, builtin=True) == "minilm"


def test_licences(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: mit\ntags: [x]\n---\n# card\n")
    assert declared_licence(tmp_path) == "mit"
    assert declared_licence(tmp_path / "none") is None
    assert declared_licence(None, "apache-2.0") == "apache-2.0"
    assert common_licence(["mit", "mit"]) == "mit"
    assert common_licence(["mit", "apache-2.0"]) is None and common_licence(["mit", None]) is None


def test_front_matter_lists_parents_of_a_merge_and_omits_a_relation_without_them():
    meta = yaml.safe_load(front_matter(base_models=["org/a", "org/b", "org/a"], relation="merge", licence="mit",
                                       tags=["merge", "basefuse"]).split("---\n")[1])
    assert meta == {"base_model": ["org/a", "org/b"], "base_model_relation": "merge", "library_name": "transformers",
                    "license": "mit", "tags": ["merge", "basefuse"]}
    meta = yaml.safe_load(front_matter(base_models=["org/a"], relation="finetune", licence=None,
                                       tags=["basefuse"]).split("---\n")[1])
    assert meta["base_model"] == "org/a" and meta["base_model_relation"] == "finetune" and "license" not in meta
    meta = yaml.safe_load(front_matter(base_models=[], relation="merge", licence=None, tags=["merge"]).split("---\n")[1])
    assert "base_model" not in meta and "base_model_relation" not in meta


def test_weights_dtype_is_that_of_most_float_parameters():
    items = [Item("a", "BF16", (10, 10)), Item("b", "F32", (50,)), Item("ids", "I64", (1, 4096))]
    assert weights_dtype(items) == "bfloat16"   # 100 bf16 vs 50 f32; integers do not count
    assert weights_dtype([Item("ids", "I64", (3,))]) is None


def test_reproduce_command_pins_hub_inputs_and_keeps_the_recipe():
    def entry(name, hub_id=None, commit=None):
        return {"name": name, "hub_id": hub_id, "commit": commit}

    manifest = {"sources": [entry("org/a@main", "org/a", COMMIT), entry("/abs/ft1")],
                "base": entry("minilm", "sentence-transformers/all-MiniLM-L6-v2"), "method": "task_arithmetic",
                "weights": [0.75, 0.25], "params": {"lambda": 0.5}, "dtype": "bfloat16", "accumulate": "float64"}
    assert reproduce_command(manifest, "out") == (
        f"basefuse fuse org/a@{COMMIT} ft1 --base minilm --method task_arithmetic --weights 0.75,0.25 "
        "--param lambda=0.5 --dtype bfloat16 --accumulate float64 --out out")
