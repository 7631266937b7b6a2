"""Does a machine that will run jobs see the driver's files? Checked on every node before any job is submitted.

Jobs write into the run directory and read local model folders and data files by the driver's paths, so each node
must mount the same storage at the same paths. The driver writes a token file with a fresh random content into the
run directory; a node that reads that content back (not merely a file of that name in a folder of its own), can write
beside it, and sees every path is fit to run jobs.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOKEN_PREFIX = ".basefuse-shared-check-"


@contextmanager
def token_file(run_dir: Path) -> Iterator[tuple[str, str]]:
    """Write a token into `run_dir` for the nodes to read back; yields (file name, content); removed afterwards."""
    content = secrets.token_hex(16)
    name = TOKEN_PREFIX + content[:12]
    path = Path(run_dir) / name
    path.write_text(content, encoding="utf-8")
    try:
        yield name, content
    finally:
        path.unlink(missing_ok=True)


def node_problem(run_dir: str, token_name: str, token: str, paths: list[str], node: str) -> str | None:
    """Run on a node: None if it sees the driver's run directory (reads the token back and can write beside it) and
    every path; otherwise its first problem, in words. `node`: a name for its own scratch file."""
    run = Path(run_dir)
    try:
        seen = (run / token_name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        seen = None
    if seen != token:
        return (f"does not see the run directory {run_dir} the driver writes (its token file is "
                f"{'missing' if seen is None else 'different'} there)")
    scratch = run / f"{token_name}.{node}"
    try:
        scratch.write_text(token, encoding="utf-8")
        scratch.unlink()
    except OSError as e:
        return f"cannot write in the run directory {run_dir} ({e.strerror or e})"
    for p in paths:
        if not Path(p).expanduser().exists():
            return f"does not see {p}, which the jobs read"
    return None


def refusal(node_ip: str, node_id: str, problem: str) -> str:
    """The one line that refuses to start a run on a cluster where a node lacks something."""
    return (f"ray node {node_ip} (node id {node_id}) {problem}: put the run directory, the base model and every "
            "local checkpoint and data file on storage every node mounts at the same path (or give models as hub ids, "
            "which each node fetches itself); nothing was submitted")
