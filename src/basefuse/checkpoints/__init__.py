"""Checkpoint I/O: local folders or hub ids, safetensors (single or sharded) or weights-only .bin.

Import from the modules (`source`, `align`, `safetensors_io`, `hashing`): the package itself imports
nothing, so `basefuse fuse` can start hashing its inputs before numpy is loaded.
"""
