"""Streaming safetensors reader and writer.

Why not `safetensors.safe_open`/`save_file`: `safe_open` memory-maps whole files, and every
page it touches stays in the process's resident memory, so reading N finetunes makes peak RSS
grow with N; `save_file` needs every output tensor in memory at once. The format is a u64
header length, a JSON header and raw little-endian bytes, so the reader maps one window of
elements at a time (a zero-copy view that is unmapped as soon as it is dropped) and the writer
appends output bytes in header order from a background thread, overlapping disk writes with
the arithmetic. Memory stays at one window per source plus the writes in flight. Files written
here are read back by `safe_open` in the tests.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from basefuse.errors import BasefuseError

# safetensors dtype name -> (numpy storage dtype, item size). BF16 is stored as uint16 bits.
DTYPES: dict[str, tuple[Any, int]] = {
    "F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2),
    "I64": (np.int64, 8), "I32": (np.int32, 4), "I16": (np.int16, 2), "I8": (np.int8, 1),
    "U8": (np.uint8, 1), "U16": (np.uint16, 2), "U32": (np.uint32, 4), "U64": (np.uint64, 8),
    "BOOL": (np.bool_, 1), "F8_E4M3": (np.uint8, 1), "F8_E5M2": (np.uint8, 1),
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's bytes live: absolute byte offsets into `file`."""

    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse and validate a safetensors header; a truncated or corrupt file is a BasefuseError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise BasefuseError(f"{path}: truncated safetensors file (no header); re-download or re-save it")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER or 8 + n > size:
                raise BasefuseError(f"{path}: corrupt or truncated safetensors header; re-download or re-save it")
            header = json.loads(f.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # deep nesting: RecursionError
        if isinstance(e, OSError):
            raise BasefuseError(f"{path}: cannot read ({e.strerror or e})") from None
        raise BasefuseError(f"{path}: corrupt safetensors header (not JSON); re-download or re-save it") from None
    if not isinstance(header, dict):
        raise BasefuseError(f"{path}: corrupt safetensors header; re-download or re-save it")
    meta = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        try:
            dtype, shape, (s, e) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
            s, e = int(s), int(e)
            itemsize = DTYPES[dtype][1]
        except (KeyError, TypeError, ValueError):
            raise BasefuseError(f"{path}: tensor {name!r} has a corrupt header entry; re-download or re-save it") from None
        if e - s != math.prod(shape) * itemsize and 0 <= s <= e:
            raise BasefuseError(f"{path}: tensor {name!r}: its dtype {dtype} and shape {list(shape)} need "
                                f"{math.prod(shape) * itemsize} bytes but its data offsets span {e - s} "
                                "(dtype/shape mismatch: corrupt header); re-download or re-save it")
        if e - s != math.prod(shape) * itemsize or s < 0 or data_start + e > size:
            raise BasefuseError(f"{path}: tensor {name!r} lies outside the file (truncated or corrupt); "
                                "re-download or re-save it")
        out[name] = TensorInfo(path, dtype, shape, data_start + s, data_start + e)
    return out, meta


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bf16 bits -> float32: the 16 bits become the top half of a float32 (exact).

    One widening copy, then an in-place shift: `bits.astype(uint32) << 16` makes a second array, and the
    fresh pages of that large temporary cost more than the shift itself (7x slower per element, measured).
    """
    wide = bits.astype(np.uint32)
    wide <<= 16
    return wide.view(np.float32)


_HIGH_HALF = slice(1, None, 2) if sys.byteorder == "little" else slice(0, None, 2)


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits, rounded to nearest even as torch does; every NaN becomes the quiet NaN 0x7FC0.

    Adds 0x7FFF plus the lowest kept bit, then keeps the top 16 bits: one temporary updated in place
    and a strided copy of its top halves, instead of a new array per operation.
    """
    shape = np.shape(x)
    b = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
    t = b >> 16
    t &= 1
    t += 0x7FFF
    t += b
    rounded = t.view(np.uint16)[_HIGH_HALF].copy()
    nan = np.isnan(b.view(np.float32))
    if nan.any():  # a NaN's payload could round into Inf, or wrap to zero
        rounded[nan] = 0x7FC0
    return rounded.reshape(shape)


def to_compute(raw: np.ndarray, dtype: str, acc: Any) -> np.ndarray:
    """Raw stored values -> `acc` floats."""
    if dtype == "BF16":
        return bf16_to_f32(raw).astype(acc, copy=False)
    return raw.astype(acc, copy=False)


def from_compute(x: np.ndarray, dtype: str) -> np.ndarray:
    """`acc` floats -> raw stored values of safetensors dtype `dtype`."""
    if dtype == "BF16":
        return f32_to_bf16(x.astype(np.float32, copy=False))
    with np.errstate(over="ignore"):  # an overflow to Inf is reported by the caller, as one error line
        return x.astype(DTYPES[dtype][0], copy=False)


class RangeReader:
    """Reads element ranges of tensors as zero-copy mapped windows (one file descriptor per file)."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}
        # file -> called with the end offset of every range mapped from it (the read-ahead, `checkpoints.readahead`)
        self.on_read: dict[Path, Callable[[int], None]] = {}

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = self._fds[path] = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise BasefuseError(f"{path}: cannot open ({e.strerror or e})") from None
        return fd

    def view(self, info: TensorInfo, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Read-only flat raw array of elements [start, stop), mapped from the file without a copy.

        The window is unmapped when the last array referring to it is dropped, so resident memory
        holds only the windows in use. The header check guarantees the range lies in the file as it
        was opened; a file truncated by another process while it is read ends this process with
        SIGBUS, as with any memory-mapped loading (safetensors' own included).
        """
        stop = info.numel if stop is None else stop
        np_dtype, itemsize = DTYPES[info.dtype]
        if stop <= start:
            return np.empty(0, dtype=np_dtype)
        first = info.start + start * itemsize
        aligned = first - first % mmap.ALLOCATIONGRANULARITY
        try:
            window = mmap.mmap(self._fd(info.file), first - aligned + (stop - start) * itemsize,
                               prot=mmap.PROT_READ, offset=aligned)
        except (OSError, ValueError) as e:
            raise BasefuseError(f"{info.file}: cannot map for reading ({e}); re-download or re-save it") from None
        watcher = self.on_read.get(info.file)
        if watcher is not None:
            watcher(first + (stop - start) * itemsize)
        return np.frombuffer(window, dtype=np_dtype, count=stop - start, offset=first - aligned)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@dataclass(frozen=True)
class OutTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPES[self.dtype][1]


def plan_shards(tensors: list[OutTensor], shard_size: int | None) -> list[list[OutTensor]]:
    """Greedy split in order; a tensor larger than `shard_size` gets a shard of its own."""
    if not shard_size:
        return [list(tensors)]
    shards: list[list[OutTensor]] = [[]]
    used = 0
    for t in tensors:
        if shards[-1] and used + t.nbytes > shard_size:
            shards.append([])
            used = 0
        shards[-1].append(t)
        used += t.nbytes
    return shards


def write_all(fd: int, data: memoryview) -> None:
    """os.write until every byte is out (short writes are legal)."""
    while data:
        data = data[os.write(fd, data):]


class StreamingWriter:
    """Writes (sharded) safetensors whose tensors arrive in plan order, in pieces.

    The header is computed up front from the plan, so only the pieces in flight are in memory.
    A background thread does the writes; `write` hands it the array, which must not be modified
    afterwards. A write error (disk full, ...) is raised by the next `write` or by `close`.
    """

    MAX_IN_FLIGHT = 64 * 1024 * 1024   # bytes queued for the thread (one piece always fits)

    def __init__(self, out_dir: Path, tensors: list[OutTensor], shard_size: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.shards = plan_shards(tensors, shard_size)
        n = len(self.shards)
        self.names = (["model.safetensors"] if n == 1 else
                      [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)])
        self._order = [(si, t) for si, shard in enumerate(self.shards) for t in shard]
        self._pos = -1
        self._left = 0
        self._shard = -1
        self._queue: deque[tuple[str, Any]] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="basefuse-writer", daemon=True)
        self._thread.start()

    def _header(self, si: int) -> bytes:
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        off = 0
        for t in self.shards[si]:
            header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [off, off + t.nbytes]}
            off += t.nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        return struct.pack("<Q", len(blob)) + blob

    def _fail(self, e: BaseException) -> None:
        with self._cond:
            self._error = self._error or e   # the first error is the one to report

    def _drain(self) -> None:
        fd = None
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                op, arg = self._queue[0]
            try:
                if op == "stop":
                    return
                if self._error is None:
                    if op == "open":
                        if fd is not None:
                            os.close(fd)
                            fd = None
                        fd = os.open(self.out_dir / self.names[arg], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                        write_all(fd, memoryview(self._header(arg)))
                    else:
                        write_all(fd, arg)
            except BaseException as e:  # handed to the caller by write()/close()
                self._fail(e)
            finally:
                if op == "stop" and fd is not None:
                    try:
                        os.close(fd)
                    except OSError as e:
                        self._fail(e)
                with self._cond:
                    self._queue.popleft()
                    self._in_flight -= len(arg) if op == "data" else 0
                    self._cond.notify_all()

    def _put(self, op: str, arg: Any) -> None:
        if self._closed:
            raise RuntimeError("write to a closed StreamingWriter")
        size = len(arg) if op == "data" else 0
        with self._cond:
            while self._in_flight and self._in_flight + size > self.MAX_IN_FLIGHT and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._queue.append((op, arg))
            self._in_flight += size
            self._cond.notify_all()

    def begin(self, name: str) -> None:
        """Start the next tensor of the plan; it must be `name`."""
        if self._left:
            raise RuntimeError(f"tensor {self._order[self._pos][1].name} not fully written")
        self._pos += 1
        si, t = self._order[self._pos]
        if t.name != name:
            raise RuntimeError(f"expected tensor {t.name}, got {name}")
        if si != self._shard:
            self._put("open", si)
            self._shard = si
        self._left = t.nbytes

    def write(self, raw: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(raw)).cast("B")
        if len(data) > self._left:
            raise RuntimeError("more bytes than the tensor holds")
        if len(data):
            self._put("data", data)
        self._left -= len(data)

    def _stop(self) -> None:
        self._closed = True
        if self._thread.is_alive():
            with self._cond:
                self._queue.append(("stop", None))
                self._cond.notify_all()
            self._thread.join()

    def abort(self) -> None:
        """Stop the writer thread after a failure elsewhere (the caller removes the files)."""
        self._fail(RuntimeError("aborted"))
        self._stop()

    def close(self) -> list[str]:
        """Finish the files (and the index when sharded); return the file names written."""
        self._stop()
        if self._error is not None:
            raise self._error
        if self._pos != len(self._order) - 1 or self._left:
            raise RuntimeError("not every planned tensor was written")
        if len(self.names) == 1:
            return list(self.names)
        from basefuse.io import write_json

        weight_map = {t.name: self.names[si] for si, t in self._order}
        total = sum(t.nbytes for _, t in self._order)
        write_json(self.out_dir / "model.safetensors.index.json",
                   {"metadata": {"total_size": total}, "weight_map": weight_map})
        return [*self.names, "model.safetensors.index.json"]
