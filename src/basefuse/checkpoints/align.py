"""Align keys across sources and base, and split body from heads.

A head model (e.g. `BertForSequenceClassification`) keeps its body under `base_model_prefix`
(`bert.`); anything outside the prefix is a head. The body to fuse is the set of body keys every
source has; a body key whose shape differs between checkpoints means another architecture (or
another vocabulary), which is an error, not a head. A task head is dropped; the head of a language
model (`lm_head` of a causal LM, the output layer of a masked or seq2seq LM: `checkpoints.heads`)
predicts over the vocabulary every source shares, so when every source is such a model of one class
and has the head with one shape, it is fused like the body.
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
    lm_heads: list[str] = field(default_factory=list)  # canonical keys of language-model heads fused with the body
    vocab_rows: dict[str, int] = field(default_factory=dict)  # tokenizer="base": vocabulary tensor -> rows fused


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


def _lm_heads(sources: list[Checkpoint], splits: list[tuple[dict[str, str], list[str]]]) -> list[str]:
    """Head keys fused with the body: every source a language model of one class, and the key in every source (a
    tied head that is not stored is simply absent; a shape clash is then another vocabulary, refused by `align`)."""
    from basefuse.checkpoints.heads import is_language_model

    archs = {tuple(c.config.get("architectures") or ()) for c in sources}
    if len(archs) != 1 or not all(is_language_model(c.config) for c in sources):
        return []
    common = set(splits[0][1])
    for _, heads in splits[1:]:
        common &= set(heads)
    return sorted(k for k in common if all(k not in body for body, _ in splits))


def _vocab_note(key: str, named: list[tuple[Checkpoint, tuple[int, ...]]]) -> str | None:
    """A shape clash in the first dimension only, where each checkpoint's vocab_size is that dimension: another
    vocabulary (added chat or special tokens), said so with the token counts."""
    shapes = [s for _, s in named]
    if any(len(s) != len(shapes[0]) or s[1:] != shapes[0][1:] for s in shapes):
        return None
    if not all(c.config.get("vocab_size") == s[0] for c, s in named if c.config.get("vocab_size") is not None):
        return None
    counts = ", ".join(f"{c.name} has {s[0]} tokens" for c, s in named)
    return (f"the vocabularies differ ({counts}; tensor {key!r}): fuse on the base's vocabulary with --tokenizer base "
            "(the rows every model has fused, the base's own rows for the rest), or fuse finetunes that share one")


def _order_key(ck: Checkpoint, stored: str) -> tuple[str, int]:
    info = ck.tensors[stored]
    return (str(getattr(info, "file", "")), int(getattr(info, "start", 0)))


def _vocab_sized(key: str, named: list[tuple[Checkpoint, tuple[int, ...]]]) -> bool:
    """Every checkpoint's tensor has its own vocab_size rows and the same trailing dimensions."""
    shapes = [s for _, s in named]
    return all(len(s) == len(shapes[0]) and s[1:] == shapes[0][1:] for s in shapes) and \
        all(c.config.get("vocab_size") == s[0] for c, s in named)


def align(sources: list[Checkpoint], base: Checkpoint | None = None, tokenizer: str = "sources") -> Alignment:
    """`tokenizer="base"`: sources whose vocabularies differ (added tokens) are fused on the base's vocabulary: a
    vocabulary-sized tensor (embeddings, LM head) gets its first rows, those every checkpoint has, fused, and the
    rest of the base's rows from the base; rows only some sources have are dropped."""
    if tokenizer not in ("sources", "base"):
        raise BasefuseError(f"--tokenizer {tokenizer!r}: use sources (all must share one vocabulary) or base")
    if tokenizer == "base" and base is None:
        raise BasefuseError("--tokenizer base fuses on the base model's vocabulary: pass --base")
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
    lm_heads = _lm_heads(sources, splits)
    for body, _ in splits:
        body.update({k: k for k in lm_heads})
    dropped: list[Dropped] = []
    for c, (_, heads) in zip(sources, splits):
        dropped += [Dropped(c.name, k, "head") for k in heads if k not in lm_heads]

    common = set(splits[0][0])
    for body, _ in splits[1:]:
        common &= set(body)
    for c, (body, _) in zip(sources, splits):
        dropped += [Dropped(c.name, body[k], "not in every source") for k in body if k not in common]

    shapes: dict[str, tuple[int, ...]] = {}
    vocab_rows: dict[str, int] = {}
    for key in common:
        ref = sources[0].tensors[splits[0][0][key]]
        named = [(c, c.tensors[body[key]].shape) for c, (body, _) in zip(sources, splits)]
        if tokenizer == "base" and len({s for _, s in named}) > 1 and _vocab_sized(key, named):
            vocab_rows[key] = min(s[0] for _, s in named)  # checked against the base below
            shapes[key] = ref.shape
            continue
        for c, (body, _) in zip(sources[1:], splits[1:]):
            info = c.tensors[body[key]]
            if info.shape != ref.shape:
                note = _vocab_note(body[key], [(sources[0], ref.shape), (c, info.shape)])
                if note:
                    raise BasefuseError(note)
                raise BasefuseError(f"tensor {body[key]!r}: shape {list(info.shape)} in {c.name} but "
                                    f"{list(ref.shape)} in {sources[0].name}; the bodies differ (another "
                                    "size or architecture), fuse only finetunes of one pretrained model")
        shapes[key] = ref.shape

    base_keys = None
    if base is not None:
        base_keys, base_heads = split_body(base)
        base_keys.update({k: k for k in lm_heads if k in base_heads})
        for key in sorted(common):
            if key not in base_keys:
                dropped += [Dropped(c.name, body[key], "not in base") for c, (body, _) in zip(sources, splits)]
                common.discard(key)
                continue
            info = base.tensors[base_keys[key]]
            if tokenizer == "base" and info.shape != shapes[key] and \
                    _vocab_sized(key, [(base, info.shape), *((c, c.tensors[b[key]].shape) for c, (b, _) in
                                                                zip(sources, splits))]):
                vocab_rows[key] = min(vocab_rows.get(key, shapes[key][0]), info.shape[0])
            if key in vocab_rows:  # the output has the base's rows: the first vocab_rows fused, the rest the base's
                vocab_rows[key] = min(vocab_rows[key], info.shape[0])
                shapes[key] = info.shape
                continue
            if info.shape != shapes[key]:
                note = _vocab_note(base_keys[key], [(base, info.shape), (sources[0], shapes[key])])
                if note:
                    raise BasefuseError(note)
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
                     shapes=shapes, dropped=dropped, copied=copied,
                     lm_heads=[k for k in lm_heads if k in common],
                     vocab_rows={k: v for k, v in vocab_rows.items() if k in common})
