"""Checkpoint I/O: local folders or hub ids, safetensors (single or sharded) or weights-only .bin."""
from basefuse.checkpoints.align import Alignment, align, split_body
from basefuse.checkpoints.source import Checkpoint, load_checkpoint, resolve

__all__ = ["Alignment", "Checkpoint", "align", "load_checkpoint", "resolve", "split_body"]
