"""The pull server's data: the BI snapshot's export pre-serialised in memory, and a watcher thread
that reloads it when the snapshot file is swapped, keeping superseded versions for pinned crawls.

With a `publications` directory, each load also writes the DATEX II publications of the same
snapshot (same read-only connection, so the same data as the OCPI objects) into
`<publications>/<version token>/`, which the DATEX II routes stream from disk; the directory of a
version goes when the version is no longer retained."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evpipeline import settings
from evpipeline.datex2.publication import Creator
from evpipeline.model.snapshot import SNAPSHOT_NAME, open_snapshot, snapshot_dir
from evpipeline.ndw.datex2_export import write_publications
from evpipeline.ndw.export import OcpiExport, build_export, nap_countries

# One logger name for the whole pull server, as before the split: operators filter on it.
log = logging.getLogger("evpipeline.ndw.server")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Positions of a window in a Collection: all of them (a range), or the matching ones (an index array).
Positions = range | npt.NDArray[np.intp]


def epoch_micros(when: datetime) -> int:
    """Microseconds since the epoch (UTC): the unit of `Collection.updated` and the date filters."""
    if when.tzinfo is None:  # the mart stores UTC
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(microseconds=1)


@dataclass(eq=False)
class Collection:
    """One module's objects in the export's stable order: JSON bytes, keys, wire last_updated."""

    bodies: list[bytes]
    keys: list[tuple[str, str, str]]
    updated: np.ndarray  # int64 microseconds since the epoch, parallel to bodies
    by_id: dict[str, tuple[int, ...]] = field(default_factory=dict)  # casefolded id -> positions
    _windows: OrderedDict[tuple[int | None, int | None], npt.NDArray[np.intp]] = field(
        default_factory=OrderedDict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls, bodies: list[bytes], keys: list[tuple[str, str, str]], updated: list[datetime]
    ) -> Collection:
        by_id: dict[str, list[int]] = {}
        for i, (_cc, _pid, object_id) in enumerate(keys):
            by_id.setdefault(object_id.casefold(), []).append(i)  # ids are CiStrings
        return cls(
            bodies=bodies,
            keys=list(keys),
            updated=np.fromiter((epoch_micros(u) for u in updated), dtype=np.int64, count=len(updated)),
            by_id={k: tuple(v) for k, v in by_id.items()},
        )

    def __len__(self) -> int:
        return len(self.bodies)

    def window(self, date_from: int | None, date_to: int | None) -> Positions:
        """Positions with date_from <= last_updated < date_to, in stable order (cached per window:
        a crawl asks for the same window on every page)."""
        if date_from is None and date_to is None:
            return range(len(self.bodies))
        key = (date_from, date_to)
        with self._lock:
            cached = self._windows.get(key)
            if cached is not None:
                self._windows.move_to_end(key)
                return cached
        mask = np.ones(len(self.updated), dtype=bool)
        if date_from is not None:
            mask &= self.updated >= date_from
        if date_to is not None:
            mask &= self.updated < date_to
        positions = np.flatnonzero(mask)
        with self._lock:
            self._windows[key] = positions
            while len(self._windows) > 32:
                self._windows.popitem(last=False)
        return positions

    def page(self, positions: Positions, offset: int, limit: int) -> list[bytes]:
        chosen = positions[offset : offset + limit]
        if isinstance(chosen, range):
            return self.bodies[chosen.start : chosen.stop]
        return [self.bodies[i] for i in chosen.tolist()]


@dataclass(eq=False)
class DataVersion:
    """One immutable data set, named by a hash of its content (same data, same token)."""

    token: str
    locations: Collection
    tariffs: Collection
    data_as_of: datetime | None
    loaded_at: float  # time.time()
    signature: tuple[int, ...] = ()
    publications: Path | None = (
        None  # the DATEX II documents of this version (datex2_export.write_publications)
    )

    @classmethod
    def from_export(cls, export: OcpiExport, signature: tuple[int, ...] = ()) -> DataVersion:
        locations = [body.encode() for body in export.locations]
        tariffs = [body.encode() for body in export.tariffs]
        digest = hashlib.blake2b(digest_size=8)
        for part in (locations, tariffs):
            for body in part:
                digest.update(body)
                digest.update(b"\x1e")
            digest.update(b"\x1d")
        return cls(
            token=digest.hexdigest(),
            locations=Collection.build(locations, export.location_keys, export.location_updated),
            tariffs=Collection.build(tariffs, export.tariff_keys, export.tariff_updated),
            data_as_of=export.data_as_of,
            loaded_at=time.time(),
            signature=signature,
        )

    def module(self, name: str) -> Collection:
        return self.locations if name == "locations" else self.tariffs


def snapshot_path(data_dir: str | Path | None = None) -> Path:
    """`<data dir>/snapshots/warehouse.duckdb`; without a data dir, the snapshot next to the warehouse."""
    if data_dir:
        return Path(data_dir).expanduser().resolve() / "snapshots" / SNAPSHOT_NAME
    return snapshot_dir(settings.warehouse_path()) / SNAPSHOT_NAME


def load_snapshot(
    path: Path,
    publish_into: Path | None = None,
    *,
    countries: list[str] | None = None,
    creator: Creator | None = None,
) -> OcpiExport:
    """`build_export` on a read-only connection to the snapshot (UTC, as the daily export); with
    `publish_into` (and the publication `creator`), the DATEX II publications of the same connection
    are written there too (versions as the ledger in the snapshot gives them: a reader records none)."""
    # Not warehouse.connect(): it retries for minutes on IOException to wait out a writer's lock,
    # but nobody writes the snapshot (it is swapped in whole), so a failure is final: fail fast and
    # keep serving the previous version. One core stays free for the event loop: a reload must not
    # starve the requests being served. The views read their Parquet files relative to the snapshot.
    con = open_snapshot(path, config={"threads": max(1, (os.cpu_count() or 2) - 1)})
    try:
        con.execute("SET TimeZone = 'UTC'")
        export = build_export(con)
        if publish_into is not None and creator is not None:
            try:
                write_publications(con, publish_into, countries=countries or nap_countries(), creator=creator)
            except Exception:  # the OCPI data still loads; the DATEX II routes answer 503 for this version
                log.exception("OCPI pull server: DATEX II publications of snapshot %s failed", path)
                shutil.rmtree(publish_into, ignore_errors=True)
        return export
    finally:
        con.close()


def _file_signature(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SnapshotStore:
    """The served data: the snapshot's export in memory, reloaded when the file changes.

    The snapshot is replaced with os.replace, so a load opens either the old or the new complete
    file, never a half-written one. A load runs off the request path (the watcher thread) and the
    new version is swapped in with one reference assignment. Superseded versions stay available
    to `version(token)` for `retain_seconds` (at most `keep_previous` of them), so a crawl that
    started on one keeps consistent pages; an unknown or expired token gets the current version.
    """

    def __init__(
        self,
        path: Path | str | None,
        *,
        poll_interval: float = 2.0,
        keep_previous: int = 1,
        retain_seconds: float = 900.0,
        loader: Callable[..., OcpiExport] = load_snapshot,
        clock: Callable[[], float] = time.time,
        publications: Path | str | None = None,
    ) -> None:
        """`publications`: a directory for the DATEX II documents of each version (None: OCPI only);
        the loader is then called as `loader(path, publish_into=<dir>)`."""
        self.path = Path(path) if path is not None else None
        self.publications = Path(publications) if publications is not None else None
        self.poll_interval, self.keep_previous, self.retain_seconds = (
            poll_interval,
            keep_previous,
            retain_seconds,
        )
        self._loader, self._clock = loader, clock
        self._current: DataVersion | None = None
        # token -> (version, retired_at or None for the current one); replaced, never mutated.
        self._versions: dict[str, tuple[DataVersion, float | None]] = {}
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_signature: tuple[int, ...] | None = None
        self._failed_at = 0.0
        self.reloads = 0
        self.last_error: str | None = None

    @classmethod
    def from_export(cls, export: OcpiExport, **kwargs: Any) -> SnapshotStore:
        """A store serving a fixed export (no file): benchmarks and embedding."""
        store = cls(None, **kwargs)
        store.install(DataVersion.from_export(export))
        return store

    # -- reads (request path, lock-free) --------------------------------------------------------
    @property
    def current(self) -> DataVersion | None:
        return self._current

    def version(self, token: str | None) -> DataVersion | None:
        """The version a pinned crawl started on, if still retained; else the current one."""
        if token:
            found = self._versions.get(token)
            if found is not None and (found[1] is None or self._clock() - found[1] <= self.retain_seconds):
                return found[0]
        return self._current

    # -- loading ----------------------------------------------------------------------------------
    def install(self, version: DataVersion) -> bool:
        """Make `version` current (atomic swap); False when it holds the same data as the current one."""
        with self._load_lock:
            return self._install(version)

    def _install(self, version: DataVersion) -> bool:
        now = self._clock()
        old = self._current
        if old is not None and old.token == version.token:
            old.signature = version.signature  # same content in a new file: nothing to swap
            return False
        versions = {
            t: (v, retired)
            for t, (v, retired) in self._versions.items()
            if retired is not None and now - retired <= self.retain_seconds and t != version.token
        }
        if old is not None:
            versions.pop(old.token, None)
            versions[old.token] = (old, now)
        retired = list(versions.items())  # in order of retirement, the newest last
        kept = retired[max(0, len(retired) - self.keep_previous) :] if self.keep_previous > 0 else []
        dropped = [
            v for v, _ in self._versions.values() if v.token not in dict(kept) and v.token != version.token
        ]
        self._versions = {**dict(kept), version.token: (version, None)}
        self._current = version
        self.reloads += 1
        for gone in dropped:  # nobody can ask for these any more: their DATEX II files go too
            if gone.publications is not None:
                shutil.rmtree(gone.publications, ignore_errors=True)
        return True

    def refresh(self, *, force: bool = False) -> bool:
        """Reload if the snapshot file changed (or `force`); True when a new version became current."""
        if self.path is None:
            return False
        with self._load_lock:
            signature = _file_signature(self.path)
            if signature is None:
                if self._current is None:
                    self.last_error = f"no snapshot at {self.path} yet"
                return False
            current = self._current
            if not force and current is not None and current.signature == signature:
                return False
            if not force and signature == self._failed_signature and time.monotonic() - self._failed_at < 60:
                return False  # a file that failed to load is retried once a minute, not every poll
            started = time.monotonic()
            loading = self.publications / ".loading" if self.publications is not None else None
            try:
                export = (
                    self._loader(self.path)
                    if loading is None
                    else self._loader(self.path, publish_into=loading)
                )
            except Exception as exc:  # keep serving the previous version
                self._failed_signature, self._failed_at = signature, time.monotonic()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception(
                    "OCPI pull server: loading snapshot %s failed; serving the previous data", self.path
                )
                return False
            version = DataVersion.from_export(export, signature)
            if loading is not None:
                version.publications = self._keep_publications(loading, version.token)
            changed = self._install(version)
            self.last_error = None
            log.info(
                "OCPI pull server: snapshot %s %s in %.2fs (%d locations, %d tariffs, version %s)",
                self.path,
                "loaded" if changed else "unchanged",
                time.monotonic() - started,
                len(version.locations),
                len(version.tariffs),
                version.token,
            )
            return changed

    def _keep_publications(self, loading: Path, token: str) -> Path | None:
        """Name the freshly written DATEX II set after its version; the same data already on disk
        (an unchanged reload) keeps the existing files, which may be being served. None when the
        loader could not write them."""
        final = loading.parent / token
        if not loading.exists():
            return final if final.exists() else None
        if final.exists():
            shutil.rmtree(loading, ignore_errors=True)
        else:
            loading.rename(final)
        return final

    def start(self) -> None:
        """Load once now, then watch the file in a daemon thread (idempotent)."""
        if self._thread is not None or self.path is None:
            return
        try:
            self.refresh()
        except Exception:  # never keep the server from starting; the watcher retries
            log.exception("OCPI pull server: initial snapshot load failed")
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="ocpi-snapshot-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:
                log.exception("OCPI pull server: snapshot watcher")
