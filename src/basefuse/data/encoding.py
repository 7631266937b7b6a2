"""Decode a text data file: UTF-8, or latin-1 only for a file that holds no UTF-8 at all.

A file that is UTF-8 but for one bad byte must not be decoded as latin-1: every accented
character elsewhere would silently become mojibake ("bád" -> "bÃ¡d"). So latin-1 is the
fallback only when no valid multi-byte UTF-8 sequence occurs anywhere in the file.
"""
from __future__ import annotations

import re
from pathlib import Path

from basefuse.errors import BasefuseError

_BOM = b"\xef\xbb\xbf"
# A well-formed multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
                             rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}"
                             rb"|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if its name ends in .gz, .bz2, .xz, .zst or .zip (as pandas reads it)."""
    from pandas.io.common import get_handle

    try:
        with get_handle(path, "rb", compression="infer", is_text=False) as h:
            return h.handle.read()
    except OSError as e:
        raise BasefuseError(f"cannot read {path}: {e.strerror or e}") from e
    except Exception as e:  # a corrupt archive: zlib.error, zipfile.BadZipFile, lzma.LZMAError ...
        raise BasefuseError(f"cannot decompress {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from e


def decode_text(data: bytes, path: Path) -> tuple[str, str]:
    """(text, encoding): UTF-8 (a leading BOM dropped), else latin-1 for a file with no UTF-8 in it.

    A file with valid UTF-8 sequences and an invalid byte is refused, naming the byte's offset.
    """
    bom = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[bom:].decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        if bom or _UTF8_MULTIBYTE.search(data):
            at = bom + e.start
            raise BasefuseError(
                f"{path}: invalid UTF-8 byte 0x{data[at]:02x} at byte offset {at} in a file that is "
                f"otherwise UTF-8: fix or remove that byte (or save the whole file as UTF-8)") from None
    return data.decode("latin-1"), "latin-1"

