"""Fusion: methods (pure maths), the streaming engine, inspection and the `fuse` API."""
