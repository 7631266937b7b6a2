"""The data-aware methods: `fisher` and `regmean` against formulas written here, their estimators against a hand
computation with autograd, and their sidecars reused by the next fuse."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from basefuse.checkpoints.align import align
from basefuse.checkpoints.source import load_checkpoint
from basefuse.errors import BasefuseError
from basefuse.fusion import data_stats, engine, sidecars
from basefuse.fusion.api import fuse
from basefuse.fusion.methods import METHODS, fuse_arrays
from builders import keyword_rows, make_family, save_base, write_csv


def ref_fisher(x, f, w, eps):
    """Σ w_i (F_i + ε) θ_i / Σ w_i (F_i + ε), float64."""
    x, f = np.asarray(x, np.float64), np.asarray(f, np.float64) + eps
    w = np.asarray(w, np.float64)[:, None]
    return (w * f * x).sum(0) / (w * f).sum(0)


def ref_regmean(ws, gs, alpha):
    """Wᵀ = (Σ G̃_i)⁻¹ Σ G̃_i W_iᵀ with G̃ = α G + (1 − α) diag(G); weights (out, in), float64."""
    tilde = [alpha * np.asarray(g, np.float64) + (1 - alpha) * np.diag(np.diag(g)) for g in gs]
    rhs = sum(t @ np.asarray(w, np.float64).T for t, w in zip(tilde, ws))
    return np.linalg.solve(sum(tilde), rhs).T


REFERENCES = {"fisher": ref_fisher, "regmean": ref_regmean}


def test_every_data_method_has_a_reference_here():
    assert {m for m in METHODS if METHODS[m].side_inputs} == set(REFERENCES)


def test_fisher_with_equal_fisher_is_the_weighted_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 40)).astype(np.float32)
    f = rng.random(40).astype(np.float32)
    w = [1.0, 2.0, 5.0]
    got = fuse_arrays("fisher", list(x), None, w, side={"fisher": [f, f, f]})
    np.testing.assert_allclose(got, (x * np.array([[1], [2], [5]]) / 8).sum(0), rtol=1e-6, atol=1e-6)
    # no source informs any element (all F = 0): the floor gives the weighted mean too
    zero = np.zeros(40, np.float32)
    got = fuse_arrays("fisher", list(x), None, w, side={"fisher": [zero] * 3})
    np.testing.assert_allclose(got, (x * np.array([[1], [2], [5]]) / 8).sum(0), rtol=1e-6, atol=1e-6)


def test_fisher_follows_the_informed_source():
    # element 0: only source 1 informs it (F 1 vs 0): θ_1; element 1: F 3 and 1 -> (3·2 + 1·6) / 4 = 3
    x = [np.array([1.0, 2.0], np.float32), np.array([5.0, 6.0], np.float32)]
    f = [np.array([0.0, 3.0], np.float32), np.array([1.0, 1.0], np.float32)]
    got = fuse_arrays("fisher", x, None, None, side={"fisher": f}, epsilon=1e-12)
    np.testing.assert_allclose(got, [5.0, 3.0], rtol=1e-6)


def test_regmean_with_identity_grams_is_the_average():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 4, 5)).astype(np.float32)
    eye = np.eye(5, dtype=np.float32).reshape(-1)
    got = fuse_arrays("regmean", [r.reshape(-1) for r in w], shape=(4, 5), side={"gram": [eye] * 3})
    np.testing.assert_allclose(got, w.mean(0).reshape(-1), rtol=1e-6, atol=1e-6)


def test_regmean_hand_worked_one_input():
    # one input dimension: G_i = g_i (1×1), so W = Σ g_i W_i / Σ g_i: g = 1, 3 -> (1·2 + 3·6) / 4 = 5
    got = fuse_arrays("regmean", [np.array([2.0], np.float32), np.array([6.0], np.float32)], shape=(1, 1),
                      side={"gram": [np.array([1.0], np.float32), np.array([3.0], np.float32)]})
    np.testing.assert_allclose(got, [5.0], rtol=1e-6)


def test_regmean_dead_input_keeps_the_mean():
    # input 1 is never active in any source (zero row and column): that column is the plain mean
    w = [np.array([[1.0, 2.0]], np.float32), np.array([[3.0, 8.0]], np.float32)]
    g = [np.diag([1.0, 0.0]).astype(np.float32), np.diag([3.0, 0.0]).astype(np.float32)]
    got = fuse_arrays("regmean", [r.reshape(-1) for r in w], shape=(1, 2), side={"gram": [r.reshape(-1) for r in g]})
    np.testing.assert_allclose(got, [(1 * 1 + 3 * 3) / 4, 5.0], rtol=1e-6)


def _write(folder: Path, tensors) -> Path:
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return folder


@pytest.mark.parametrize("method", ["fisher", "regmean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_equals_the_formulas(tmp_path, monkeypatch, method, seed):
    """The engine, in tiny chunks, with synthetic statistics as sidecars, equals the formulas within 1e-6."""
    g = torch.Generator().manual_seed(seed)
    n = 2 + seed
    shapes = {"q.weight": (6, 5), "q_bias": (6,), "v.weight": (3, 7), "norm": (5,)}  # no shared prefix
    srcs = [{k: torch.randn(s, generator=g) for k, s in shapes.items()} for _ in range(n)]
    if method == "fisher":
        stats = [{k: torch.rand(s, generator=g) for k, s in shapes.items()} for _ in range(n)]
    else:  # well-conditioned Grams AᵀA + I for the two linear weights only
        stats = []
        for _ in range(n):
            d = {}
            for k in ("q.weight", "v.weight"):
                a = torch.randn(9, shapes[k][1], generator=g)
                d[k] = a.T @ a + torch.eye(shapes[k][1])
            stats.append(d)
    cks = [load_checkpoint(_write(tmp_path / f"s{i}", s)) for i, s in enumerate(srcs)]
    side = []
    for i, st in enumerate(stats):
        p = tmp_path / f"side{i}.safetensors"
        save_file(st, str(p))
        side.append(sidecars.open_sidecar(p, f"side{i}"))
    al = align(cks, None)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(engine, "MIN_CHUNK", 4)
    monkeypatch.setattr(engine, "CHUNK_BYTES", 4)
    m = METHODS[method]
    raw_w = [float(v) for v in torch.rand(n, generator=g) + 0.1]
    w = np.asarray(raw_w) / sum(raw_w) if m.weights != "ignored" else np.full(n, 1 / n)
    params = {**m.defaults(), **({"epsilon": 1e-3} if method == "fisher" else {"alpha": 0.7})}
    job = engine.FusionJob(sources=cks, base=None, alignment=al, items=engine.plan(cks, None, al, None), method=m,
                           weights=w, params=params, out_dir=out, side={m.side_inputs[0]: side})
    engine.run(job)
    got = load_file(str(out / "model.safetensors"))
    for k, shape in shapes.items():
        x = np.stack([s[k].double().numpy().reshape(-1) for s in srcs])
        if method == "fisher":
            want = ref_fisher(x, [st[k].numpy().reshape(-1) for st in stats], w, 1e-3)
        elif k in stats[0]:
            want = ref_regmean([s[k].numpy() for s in srcs], [st[k].numpy() for st in stats], 0.7).reshape(-1)
        else:
            want = x.mean(0)
        np.testing.assert_allclose(got[k].double().numpy().reshape(-1), want, rtol=1e-6, atol=1e-6, err_msg=k)
    for c in cks + side:
        c.close()


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("datafam")
    base, srcs = make_family(root, 3)
    csv = write_csv(root / "task.csv", keyword_rows(60, 0))
    return root, base, srcs, csv


def _classifier(folder: Path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder).float().eval()


def test_fisher_estimator_matches_autograd_by_hand(family):
    """Per example, d log softmax(logits)[argmax] / dθ squared, averaged: one batched forward with autograd.grad
    per row here, against the estimator's one forward per example."""
    from transformers import AutoTokenizer

    _, base, srcs, _ = family
    model = _classifier(srcs[1])
    tok = AutoTokenizer.from_pretrained(base)
    texts = ["good w1 w2", "bad", "meh w3 good bad w4"]
    keys = {p: p for p, _ in model.named_parameters() if p.startswith("bert.")}
    got, count = data_stats.fisher_diagonal(model, iter([dict(tok([t], return_tensors="pt")) for t in texts]), keys)
    assert count == 3
    enc = tok(texts, return_tensors="pt", padding=True)
    logp = torch.log_softmax(model(**enc).logits, dim=-1)
    params = [p for n, p in model.named_parameters() if n in keys]
    want = [torch.zeros_like(p) for p in params]
    for i in range(3):
        grads = torch.autograd.grad(logp[i, logp[i].argmax()], params, retain_graph=True, allow_unused=True)
        for acc, gr in zip(want, grads):
            if gr is not None:
                acc += gr ** 2 / 3
    for name, w in zip(keys, want):
        torch.testing.assert_close(got[name], w, rtol=1e-4, atol=1e-9, msg=name)
    assert sum(float(v.sum()) for v in got.values()) > 0


def test_gram_estimator_matches_hidden_states_by_hand(family):
    """The query layer of block l reads hidden state l: Xᵀ X over its real tokens, from output_hidden_states."""
    from transformers import AutoTokenizer

    _, base, srcs, _ = family
    model = _classifier(srcs[0])
    tok = AutoTokenizer.from_pretrained(base)
    texts = ["good w1 w2 w5 w6", "bad", "meh w3"]
    stored = list(load_file(str(srcs[0] / "model.safetensors")))
    layers = data_stats.linear_layers(model, "bert.", stored)
    assert "classifier.weight" not in layers and "bert.pooler.dense.weight" in layers
    enc = dict(tok(texts, return_tensors="pt", padding=True))
    got, tokens = data_stats.gram_matrices(model, iter([enc]), layers)
    mask = enc["attention_mask"].bool()
    assert tokens == int(mask.sum())
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    for layer in (0, 1):
        x = hidden[layer][mask].double()
        torch.testing.assert_close(got[f"bert.encoder.layer.{layer}.attention.self.query.weight"],
                                   (x.T @ x).float(), rtol=1e-5, atol=1e-4)


@pytest.fixture
def one_thread():
    """Batch-of-one backward passes of a 32-wide model: more torch threads only contend for the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_fisher_fuse_uses_the_sidecars_and_reuses_them(family, tmp_path, monkeypatch, one_thread):
    root, base, srcs, csv = family
    calls = []
    real = sidecars._compute
    monkeypatch.setattr(sidecars, "_compute", lambda req, task: calls.append(req.kind) or real(req, task))
    data = {str(s): str(csv) for s in srcs}
    w = [1.0, 2.0, 3.0]
    man = fuse([str(s) for s in srcs], tmp_path / "o1", base=str(base), method="fisher", data=data, weights=w,
               progress=False, params={"n": 6})
    assert calls == ["fisher"] * 3
    paths = [Path(p) for p in man["side_inputs"]["fisher"]]
    assert all(p.parent == s for p, s in zip(paths, srcs))
    mtimes = [p.stat().st_mtime_ns for p in paths]
    man2 = fuse([str(s) for s in srcs], tmp_path / "o2", base=str(base), method="fisher", data=data, weights=w,
                progress=False, params={"n": 6})
    assert calls == ["fisher"] * 3, "the second fuse recomputed a Fisher"
    assert [p.stat().st_mtime_ns for p in paths] == mtimes and man2["side_inputs"] == man["side_inputs"]
    # the output is the Fisher-weighted mean of the bodies, read back from the sidecars
    fishers = [load_file(str(p)) for p in paths]
    bodies = [load_file(str(s / "model.safetensors")) for s in srcs]
    got = load_file(str(tmp_path / "o1" / "model.safetensors"))
    wn = np.asarray(w) / 6
    key = "encoder.layer.0.attention.self.query.weight"
    want = ref_fisher([b[f"bert.{key}"].numpy().reshape(-1) for b in bodies],
                      [f[f"bert.{key}"].numpy().reshape(-1) for f in fishers], wn, 1e-8)
    np.testing.assert_allclose(got[key].numpy().reshape(-1), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, np.average([b[f"bert.{key}"].numpy().reshape(-1) for b in bodies], 0, wn))
    # another n is another statistic: computed anew, beside the first
    fuse([str(s) for s in srcs], tmp_path / "o3", base=str(base), method="fisher", data=data, progress=False,
         params={"n": 3})
    assert calls == ["fisher"] * 6


def test_regmean_fuse_end_to_end(family, tmp_path):
    root, base, srcs, csv = family
    data = {str(s): str(csv) for s in srcs}
    man = fuse([str(s) for s in srcs], tmp_path / "o", base=str(base), method="regmean", data=data, progress=False,
               params={"n": 10, "alpha": 0.5})
    grams = [load_file(p) for p in man["side_inputs"]["gram"]]
    bodies = [load_file(str(s / "model.safetensors")) for s in srcs]
    got = load_file(str(tmp_path / "o" / "model.safetensors"))
    key = "encoder.layer.1.output.dense.weight"
    want = ref_regmean([b[f"bert.{key}"].numpy() for b in bodies], [g[f"bert.{key}"].numpy() for g in grams], 0.5)
    np.testing.assert_allclose(got[key].numpy(), want, rtol=1e-4, atol=1e-6)
    bias = "encoder.layer.1.output.dense.bias"
    np.testing.assert_allclose(got[bias].numpy(), np.mean([b[f"bert.{bias}"].numpy() for b in bodies], 0),
                               rtol=1e-6, atol=1e-7)


def test_refusals(family, tmp_path):
    root, base, srcs, csv = family
    s = [str(p) for p in srcs]
    with pytest.raises(BasefuseError, match=f"give --data {s[2]}=TASK"):
        fuse(s, tmp_path / "o", method="fisher", data={s[0]: str(csv), s[1]: str(csv)}, progress=False)
    with pytest.raises(BasefuseError, match="reads no data: drop --data"):
        fuse(s, tmp_path / "o", method="average", data={x: str(csv) for x in s}, progress=False)
    with pytest.raises(BasefuseError, match="not one of the sources"):
        fuse(s, tmp_path / "o", method="regmean", data={**{x: str(csv) for x in s}, "elsewhere": "x"},
             progress=False)
    bare = [str(save_base(tmp_path / f"bare{i}", seed=i)) for i in range(2)]
    with pytest.raises(BasefuseError, match="not a sequence classifier"):
        fuse(bare, tmp_path / "o", method="fisher", data={x: str(csv) for x in bare}, progress=False,
             allow_unrelated=True)
    assert not (tmp_path / "o").exists()


# ---- experiments: each source's statistics on the task it was finetuned on ------------------------------------

def _plan(fusion):
    from basefuse.experiments.config import parse_experiment_config
    from basefuse.experiments.protocol import TaskFacts, build_plan

    fams = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}
    cfg = parse_experiment_config({"families": fams, "seeds": [0], "targets": ["a1"], "fusion": fusion})
    facts = {n: TaskFacts(10, f"{n}-s", f"{n}-t") for n in cfg.task_refs()}
    return build_plan(cfg, facts, "base", "fp")


def test_an_experiments_fisher_fusion_names_each_sources_own_task():
    plan = _plan({"method": "fisher", "params": {"n": 8}})
    fuses = [j for j in plan.jobs.values() if j.kind == "fuse"]
    assert fuses
    for job in fuses:
        assert len(job.params["data"]) == len(job.params["sources"])
        for ref, data in zip(job.params["sources"], job.params["data"]):
            task = plan.jobs[ref["job"]].params["task"]
            assert data == {k: task[k] for k in ("spec", "text_col", "label_col", "pair_col")}
            assert data["spec"] == task["name"]  # built-in names here: each source's own
    # a data-free fusion's job (and so its key) holds no data
    assert all("data" not in j.params for j in _plan({"method": "ties"}).jobs.values() if j.kind == "fuse")


# ---- the command line, and the cache when the checkpoint's folder takes no sidecar ------------------------------

def test_cli_regmean_with_data(family, tmp_path, cli):
    root, base, srcs, csv = family
    data = [a for s in srcs for a in ("--data", f"{s}={csv}")]
    code, out, err = cli(["fuse", *srcs, "--base", base, "-m", "regmean", "-P", "n=6", *data, "-o", tmp_path / "o",
                          "--no-progress"])
    assert code == 0, err
    man = json.loads((tmp_path / "o" / "fusion.json").read_text())
    assert man["method"] == "regmean" and [s["data"] for s in man["sources"]] == [str(csv)] * 3
    card = (tmp_path / "o" / "README.md").read_text()
    # the card's reproduce line names each source's task (a local file by its name: a card holds no local paths)
    assert all(f"--data {s.name}={csv.name}" in card for s in srcs)
    code, out, err = cli(["fuse", *srcs, "--base", base, "-m", "regmean", "--data", f"{srcs[0]}", "-o",
                          tmp_path / "o2", "--no-progress"])
    assert code != 0 and "write SOURCE=TASK" in err and not (tmp_path / "o2").exists()


def test_sidecar_goes_to_the_cache_when_the_folder_takes_none(family, tmp_path, monkeypatch):
    from basefuse.checkpoints.ref import weights_fingerprint
    from basefuse.data.api import load_task

    root, base, srcs, csv = family
    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    ck = load_checkpoint(srcs[0])
    key = sidecars.sidecar_key("gram", weights_fingerprint(srcs[0]), load_task(str(csv)).fingerprint, 4)
    blocker = srcs[0] / f"basefuse-gram-{key}.safetensors"
    blocker.mkdir()  # that name beside the checkpoint cannot become a file
    try:
        req = sidecars.StatsRequest("gram", ck, str(csv), 4, base)
        path = sidecars.statistics(req)
        assert path == tmp_path / "cache" / "fusion-stats" / blocker.name and path.is_file()
        assert sidecars.statistics(req) == path  # found there next time
    finally:
        blocker.rmdir()
        ck.close()


def test_a_hub_snapshot_gets_no_sidecar(tmp_path, monkeypatch):
    from basefuse.fusion.sidecars import _places

    monkeypatch.setenv("BASEFUSE_CACHE", str(tmp_path / "cache"))
    snap = tmp_path / "hub" / "models--org--m" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    assert _places(snap, "gram", "k") == [tmp_path / "cache" / "fusion-stats" / "basefuse-gram-k.safetensors"]
    plain = tmp_path / "mine"
    assert _places(plain, "gram", "k")[0] == plain / "basefuse-gram-k.safetensors"


@pytest.mark.slow
def test_an_experiment_runs_fisher_and_regmean_beside_average(tmp_path):
    """The tiny experiment with three fusions side by side: each data-aware fuse job estimated every source's
    statistics on that source's own task file, as sidecars beside the source finetune."""
    from basefuse.experiments.config import parse_experiment_config
    from basefuse.experiments.runner import run_experiment

    from builders import make_tiny_experiment

    fusion = [{"method": "average"}, {"method": "fisher", "params": {"n": 16}},
              {"method": "regmean", "params": {"n": 16}}]
    cfg = parse_experiment_config(make_tiny_experiment(tmp_path, seeds=[0], fusion=fusion))
    run_experiment(cfg, tmp_path / "run", progress=False)
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "run").rglob("fusion.json")]
    by_method = {m["method"]: m for m in manifests}
    assert {"average", "fisher", "regmean"} <= set(by_method)
    for method, kind in (("fisher", "fisher"), ("regmean", "gram")):
        man = by_method[method]
        for src, side in zip(man["sources"], man["side_inputs"][kind]):
            assert Path(side).parent == Path(src["path"])            # beside the source finetune
            task = Path(src["data"]["spec"]).stem
            assert task in {f"{f}{i}" for f in "xy" for i in range(1, 4)}
            assert load_file(side)  # a readable safetensors file
        assert len({Path(s["data"]["spec"]) for s in man["sources"]}) == len(man["sources"])  # each its own task


@pytest.mark.parametrize("method", ["fisher", "regmean"])
def test_numpy_and_torch_agree(method):
    """The --device cuda code path (torch tensors, here on the CPU) gives the numpy path's values."""
    rng = np.random.default_rng(3)
    x = [r.reshape(-1) for r in rng.normal(size=(3, 4, 6)).astype(np.float32)]
    if method == "fisher":
        side = {"fisher": list(rng.random(size=(3, 24)).astype(np.float32))}
    else:
        side = {"gram": [(a.T @ a + np.eye(6)).astype(np.float32).reshape(-1) for a in rng.normal(size=(3, 8, 6))]}
    want = fuse_arrays(method, x, shape=(4, 6), side=side)
    got = fuse_arrays(method, [torch.from_numpy(r) for r in x], shape=(4, 6),
                      side={k: [torch.from_numpy(r) for r in v] for k, v in side.items()})
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)
