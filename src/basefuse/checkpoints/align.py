"""Align keys across sources and base, and split body from heads.

A head model (e.g. `BertForSequenceClassification`) keeps its body under `base_model_prefix`
(`bert.`); anything outside the prefix is a head. The body to fuse is the set of body keys every
source has; a body key whose shape differs between checkpoints means another architecture,
which is an error, not a head.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from basefuse.checkpoints.safetensors_io import FLOAT_DTYPES
from basefuse.checkpoints.source import Checkpoint
from basefuse.errors import BasefuseError


@dataclass
class Dropped:
    source: str
    key: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "key": self.key, "reason": self.reason}


@dataclass
class Alignment:
    body: list[str]                      # canonical keys fused, in output order
    source_keys: list[dict[str, str]]    # per source: canonical -> stored key
    base_keys: dict[str, str] | None     # canonical -> stored key of the base
    shapes: dict[str, tuple[int, ...]]
    dropped: list[Dropped] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)  # canonical body keys not fused (integer buffers)


def split_body(ck: Checkpoint) -> tuple[dict[str, str], list[str]]:
    """(canonical body key -> stored key, head keys) of one checkpoint."""
    prefix = ck.prefix
    body: dict[str, str] = {}
    heads: list[str] = []
    for k in ck.tensors:
        if prefix is None:
            body[k] = k
        elif k.startswith(prefix + "."):
            body[k[len(prefix) + 1:]] = k
        else:
            heads.append(k)
    return body, heads


def _order_key(ck: Checkpoint, stored: str) -> tuple[str, int]:
    info = ck.tensors[stored]
    return (str(getattr(info, "file", "")), int(getattr(info, "start", 0)))


def align(sources: list[Checkpoint], base: Checkpoint | None = None) -> Alignment:
    if len(sources) < 2:
        raise BasefuseError(f"got {len(sources)} source(s): fusion needs at least 2 finetuned checkpoints")
    everyone = [*sources, *([base] if base is not None else [])]
    types = {c.name: c.model_type for c in everyone}
    if len(set(types.values())) > 1:
        first = everyone[0]
        other = next(c for c in everyone if c.model_type != first.model_type)
        raise BasefuseError(f"{other.path / 'config.json'}: model_type {other.model_type!r} differs from "
                            f"{first.model_type!r} of {first.name}; fuse only finetunes of one pretrained model")
    splits = [split_body(c) for c in sources]
    dropped: list[Dropped] = []
    for c, (_, heads) in zip(sources, splits):
        dropped += [Dropped(c.name, k, "head") for k in heads]

    common = set(splits[0][0])
    for body, _ in splits[1:]:
        common &= set(body)
    for c, (body, _) in zip(sources, splits):
        dropped += [Dropped(c.name, body[k], "not in every source") for k in body if k not in common]

    shapes: dict[str, tuple[int, ...]] = {}
    for key in common:
        ref = sources[0].tensors[splits[0][0][key]]
        for c, (body, _) in zip(sources[1:], splits[1:]):
            info = c.tensors[body[key]]
            if info.shape != ref.shape:
                raise BasefuseError(f"tensor {body[key]!r}: shape {list(info.shape)} in {c.name} but "
                                    f"{list(ref.shape)} in {sources[0].name}; the bodies differ (another "
                                    "size or architecture), fuse only finetunes of one pretrained model")
        shapes[key] = ref.shape

    base_keys = None
    if base is not None:
        base_keys, _ = split_body(base)
        for key in sorted(common):
            if key not in base_keys:
                dropped += [Dropped(c.name, body[key], "not in base") for c, (body, _) in zip(sources, splits)]
                common.discard(key)
                continue
            info = base.tensors[base_keys[key]]
            if info.shape != shapes[key]:
                raise BasefuseError(f"tensor {base_keys[key]!r}: shape {list(info.shape)} in base {base.name} but "
                                    f"{list(shapes[key])} in the sources; use the pretrained model the sources "
                                    "were finetuned from as --base")

    copied = sorted(k for k in common if any(c.tensors[b[k]].dtype not in FLOAT_DTYPES
                                               for c, (b, _) in zip(sources, splits)))
    for key in copied:  # integer buffers (position ids) are copied; a float tensor stored as integers is corrupt
        stored = [(c.name, b[key], c.tensors[b[key]].dtype) for c, (b, _) in zip(sources, splits)]
        if base_keys is not None:
            stored.append((base.name, base_keys[key], base.tensors[base_keys[key]].dtype))
        floats = [s for s in stored if s[2] in FLOAT_DTYPES]
        if floats:
            name, stored_key, dtype = next(s for s in stored if s[2] not in FLOAT_DTYPES)
            raise BasefuseError(f"tensor {stored_key!r}: dtype {dtype} in {name} but {floats[0][2]} in "
                                f"{floats[0][0]}; a floating-point tensor stored as integers is corrupt: "
                                "re-save that checkpoint")
    order_ck, order_map = (base, base_keys) if base is not None else (sources[0], splits[0][0])
    body_keys = sorted(common, key=lambda k: _order_key(order_ck, order_map[k]))
    return Alignment(body=body_keys, source_keys=[b for b, _ in splits], base_keys=base_keys,
                     shapes=shapes, dropped=dropped, copied=copied)
