"""The pool checkpoints of an experiment, resolved before planning: where each model is, the sha256 of its weights,
and whether it is a finetune of the experiment's base model at all (the same check as `basefuse inspect`)."""
from __future__ import annotations


from basefuse.checkpoints.ref import split_revision
from basefuse.errors import BasefuseError
from basefuse.experiments.config import CheckpointRef, ExperimentConfig
from basefuse.experiments.protocol import CheckpointFacts


def resolve_checkpoint(ref: CheckpointRef) -> str:
    """The local folder of a pool checkpoint (a hub id is fetched into the hub cache, at its revision if given)."""
    from basefuse.checkpoints.ref import resolve_ref
    from basefuse.models import is_model_folder

    try:
        path = resolve_ref(ref.model).folder
    except BasefuseError as e:
        raise BasefuseError(f"checkpoint {ref.name!r}: {e}") from None
    if not is_model_folder(path):
        raise BasefuseError(f"checkpoint {ref.name!r}: {path} is not a model folder (needs config.json and "
                            "model.safetensors or pytorch_model.bin): point `model` at the folder save_pretrained "
                            "wrote")
    return str(path.resolve())


def check_related(paths: dict[str, str], base: str) -> None:
    """Refuse a checkpoint that is no finetune of the base (a different pretraining is as far away as the body
    is large) or holds NaN/Inf weights: fusing it would be meaningless. Checkpoints of one pool may have trained
    for very different lengths, so the far-from-the-median rule of `inspect` does not apply here."""
    from basefuse.fusion.inspect import inspect_sources

    if not paths:
        return
    listed = list(paths.values())
    try:  # inspecting needs two models: a pool of one is compared with itself
        stats = inspect_sources(listed if len(listed) > 1 else listed * 2, base, outliers=False)
    except BasefuseError as e:
        raise BasefuseError(f"pool checkpoints {', '.join(paths)} do not all match the base model {base}: {e}") \
            from None
    names = {p: n for n, p in paths.items()}
    for flag in stats["flagged"]:
        name = names.get(flag["source"], flag["source"])
        raise BasefuseError(f"checkpoint {name!r} ({flag['source']}): {flag['reason']}; is it a finetune of the "
                            "base model? Set allow_unrelated: true on it to use it anyway")


def resolve_pool(cfg: ExperimentConfig, base: str) -> dict[str, CheckpointFacts]:
    """Every pool checkpoint resolved, fingerprinted and checked against the base, before anything else runs."""
    from basefuse.experiments.locate import origin_of
    from basefuse.finetuning.api import base_fingerprint

    pool = cfg.checkpoints()
    paths = {name: resolve_checkpoint(ref) for name, ref in pool.items()}
    check_related({n: p for n, p in paths.items() if not pool[n].allow_unrelated}, base)
    # a hub checkpoint keeps its id and the commit it resolved to: a node without this folder fetches that commit
    return {name: CheckpointFacts(path=path, fingerprint=base_fingerprint(path),
                                  origin=origin_of(split_revision(pool[name].model)[0], path))
            for name, path in paths.items()}
