"""Export files with checksums and manifests: shared by the OCPI export and the DATEX II publications.

- `write_file(path, text)`: write one file (via `.part` + rename) and return its manifest entry;
- `ChecksumSink`: a binary sink that hashes and counts what a streaming writer sends through it
  (the DATEX II builder streams hundreds of MB; nothing is held in memory);
- `write_manifest(directory, body)`: `manifest.json`, sorted keys, so the same state gives the same bytes;
- `replace_directory(staging, final)`: swap a fully written partition directory in, so a reader
  sees the old complete set or the new complete set, never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

MANIFEST = "manifest.json"


def entry(data: bytes) -> dict[str, Any]:
    """A manifest entry: size and sha256 of a file's bytes."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_file(path: Path, text: str | bytes) -> dict[str, Any]:
    """Write `text` to `path` atomically (`.part` + rename); its manifest entry."""
    data = text.encode() if isinstance(text, str) else text
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(path)
    return entry(data)


class ChecksumSink:
    """A write-only binary file that hashes and counts as it goes: `with ChecksumSink(path) as out:`
    hand `out` to a streaming writer, then `out.entry` is the manifest entry. Written to `.part`
    and renamed on a clean exit; removed if the writer raised."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = path.with_suffix(path.suffix + ".part")
        self._file = self._partial.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._file.write(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._file.flush()

    @property
    def entry(self) -> dict[str, Any]:
        return {"bytes": self.size, "sha256": self._hash.hexdigest()}

    def __enter__(self) -> ChecksumSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
        if kind is None:
            self._partial.replace(self.path)
        else:
            self._partial.unlink(missing_ok=True)


def canonical_json(value: Any) -> str:
    """JSON as the manifests and rejection reports are written: one space indent, sorted keys."""
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


def write_manifest(directory: Path, body: dict[str, Any]) -> dict[str, Any]:
    write_file(directory / MANIFEST, canonical_json(body))
    return body


def staging_directory(final: Path) -> Path:
    """An empty directory next to `final` (same file system, so the swap is a rename)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def replace_directory(staging: Path, final: Path) -> Path:
    """Move the complete `staging` directory to `final`, replacing what was there."""
    retired = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        shutil.rmtree(retired, ignore_errors=True)
        final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired, ignore_errors=True)
    return final
