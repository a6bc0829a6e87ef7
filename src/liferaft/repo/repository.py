"""Opening, creating and reading a repository: config, keys, snapshots, chunks.

Writing a backup is ``repo.writer``; this module is the read side plus key management.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import zstandard

from liferaft.crypto import keys
from liferaft.crypto.aead import AuthenticationFailed, Opener, Sealer
from liferaft.crypto.ids import IdKey
from liferaft.errors import (
    AmbiguousSnapshot,
    CorruptRepository,
    KeyManagementError,
    ObjectMissing,
    RepositoryExists,
    RepositoryNewerFormat,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongPassword,
)
from liferaft.format import FORMAT_VERSION, KNOWN_FEATURES, ChunkId, FormatError, PackId, SnapshotId
from liferaft.format.config import CHUNK_SIZE_DEFAULT, PACK_SIZE_DEFAULT, RepoConfig
from liferaft.format.damage import DamageRecord
from liferaft.format.drill import DrillVerdict
from liferaft.format.index import Location
from liferaft.format.keyfile import KeyRecord
from liferaft.format.settings import RepoSettings
from liferaft.format.snapshot import Snapshot
from liferaft.repo import blobs, damage, drills, names
from liferaft.repo.index import ChunkIndex, open_index
from liferaft.repo.listing import valid_names
from liferaft.store.base import Store

SNAPSHOT_NAME = re.compile(r"[0-9a-f]{64}")
SETTINGS_AD = b"liferaft settings"
SNAPSHOT_AD = b"liferaft snapshot"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    label: str
    created: str
    current: bool


def _read_config(store: Store) -> RepoConfig:
    try:
        raw = store.get(names.CONFIG)
    except ObjectMissing:
        raise RepositoryNotFound(location=store.location) from None
    try:
        cfg = RepoConfig.from_bytes(raw)
    except FormatError as exc:
        if b"liferaft" in raw:  # a liferaft config, damaged: not somebody else's folder
            raise CorruptRepository(
                f"its config is damaged ({exc}); restore it from any copy of the repository (it holds no secret)"
            ) from None
        raise RepositoryNotFound(location=store.location) from None
    unknown = set(cfg.features) - KNOWN_FEATURES
    if cfg.version > FORMAT_VERSION or unknown:
        raise RepositoryNewerFormat(
            location=store.location, found=cfg.version, features=sorted(unknown) or "none", supported=FORMAT_VERSION
        )
    try:
        cfg.validate()
    except FormatError as exc:
        raise CorruptRepository(str(exc)) from None
    return cfg


def list_names(store: Store, prefix: str) -> list[str]:
    return sorted(o.name for o in store.list(prefix))


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "liferaft"


class Repository:
    def __init__(self, store: Store, config: RepoConfig, master: keys.MasterKey, key_id: str, cache_root: Path) -> None:
        self.store = store
        self.config = config
        self.master = master
        self.key_id = key_id
        self.opener = Opener(master)
        self.ids = IdKey(master.ids)
        self.cache_dir = cache_root / config.repo_id.hex()
        self.warnings: list[str] = []
        """What the run left out as it went (stray objects, unreadable deltas), for messages."""

    # --- life cycle ---------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        store: Store,
        password: bytes,
        cache_root: Path,
        chunk_size: int = CHUNK_SIZE_DEFAULT,
        compression_level: int = 3,
        cost: keys.KdfCost | None = None,
    ) -> Repository:
        try:
            store.get(names.CONFIG)
        except ObjectMissing:
            pass
        else:
            raise RepositoryExists(location=store.location)
        cfg = RepoConfig(FORMAT_VERSION, (), os.urandom(16), chunk_size, PACK_SIZE_DEFAULT, compression_level)
        try:
            cfg.validate()
        except FormatError as exc:
            from liferaft.errors import UsageError

            raise UsageError(str(exc).removeprefix("config: ")) from None
        master = keys.MasterKey.generate()
        record = keys.wrap(master, password, cfg.repo_id, "initial", cost)
        key_id = hashlib.sha256(record.to_bytes()).hexdigest()[:16]
        store.put(names.key(key_id), record.to_bytes())
        store.sync()
        store.put(names.CONFIG, cfg.to_bytes())  # last: a repository exists once its config does
        store.sync()
        return cls(store, cfg, master, key_id, cache_root)

    @classmethod
    def open(cls, store: Store, password: bytes | Callable[[], bytes], cache_root: Path) -> Repository:
        """password: or a function giving it, called after the config was read."""
        cfg = _read_config(store)
        if callable(password):
            password = password()
        tried: set[str] = set()
        damaged_keys: set[str] = set()
        for _ in range(2):  # a second listing, in case the first lagged behind a key just added
            for name in [n for n in list_names(store, names.KEYS) if n not in tried]:
                tried.add(name)
                try:
                    record = KeyRecord.from_bytes(store.get(name))
                except FormatError:
                    damaged_keys.add(name)
                    continue
                master = keys.unwrap(record, password, cfg.repo_id)
                if master is not None:
                    return cls(store, cfg, master, names.leaf(name), cache_root)
        if damaged_keys and damaged_keys == tried:
            raise CorruptRepository(
                f"every key record is damaged ({', '.join(sorted(damaged_keys))}): no password can open it; "
                "a copy of the repository's keys/ folder restores them"
            )
        if damaged_keys:
            raise WrongPassword(
                location=store.location, detail=f"and {len(damaged_keys)} of its key records are damaged: it may be one of them"
            )
        raise WrongPassword(location=store.location)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- keys ---------------------------------------------------------------------------------
    def add_key(self, password: bytes, label: str, cost: keys.KdfCost | None = None) -> str:
        record = keys.wrap(self.master, password, self.config.repo_id, label, cost)
        key_id = hashlib.sha256(record.to_bytes()).hexdigest()[:16]
        self.store.put(names.key(key_id), record.to_bytes())
        self.store.sync()
        return key_id

    def list_keys(self) -> list[KeyInfo]:
        out = []
        for name in list_names(self.store, names.KEYS):
            try:
                record = KeyRecord.from_bytes(self.store.get(name))
            except FormatError:
                continue
            kid = names.leaf(name)
            out.append(KeyInfo(kid, record.label, record.created, kid == self.key_id))
        return out

    def remove_key(self, key_id: str) -> None:
        ids = [k.key_id for k in self.list_keys()]
        matches = [k for k in ids if k.startswith(key_id)]
        if len(matches) != 1:
            raise KeyManagementError(f"no single key matches '{key_id}': see 'liferaft key list'")
        if len(ids) == 1:
            raise KeyManagementError("that is the repository's last key: add another before removing it")
        if matches[0] == self.key_id:
            raise KeyManagementError("that key is the one in use: open the repository with another password to remove it")
        self.store.delete(names.key(matches[0]))

    # --- index and chunks ---------------------------------------------------------------------
    def open_index(
        self, cache_dir: Path | None = None, tally: dict[PackId, int] | None = None, adopt: bool = False
    ) -> ChunkIndex:  # fmt: skip
        """tally, adopt: see ``repo.index.open_index``; what it left out joins ``warnings``."""
        index = open_index(self.store, self.opener, cache_dir or self.cache_dir, tally, adopt)
        self.warnings.extend(w for w in index.warnings if w not in self.warnings)
        return index

    def read_chunk(self, cid: ChunkId, loc: Location, check_id: bool = False) -> bytes:
        return self._open(cid, loc, self._get_range(loc.pack, [cid], loc.offset, loc.length), check_id)

    def _get_range(self, pack: PackId, cids: list[ChunkId], offset: int, length: int) -> bytes:
        """A range of a pack; a pack gone is recorded as damage (the next backup stores its
        chunks again) before the error goes on."""
        try:
            return self.store.get_range(names.pack(pack), offset, length)
        except ObjectMissing:
            self.record_damage(DamageRecord((pack,), tuple((c, pack) for c in cids), (f"pack {pack.hex()[:16]} is missing",)))
            raise

    def record_drill(self, verdict: DrillVerdict) -> str:
        return drills.record(self.store, Sealer(self.master), verdict)

    def drills(self) -> dict[str, DrillVerdict]:
        """The newest drill verdict of each snapshot drilled."""
        return drills.latest(self.store, self.opener, self.warnings)

    def record_damage(self, record: DamageRecord) -> None:
        """Remember damage found while reading (best effort: read-only media takes no record)."""
        damage.record(self.store, Sealer(self.master), record)

    def read_chunks(self, run: list[tuple[ChunkId, Location]]) -> list[bytes]:
        """Chunks whose blobs lie close together in one pack, read with one request for the range
        covering them (a remote store answers one large range far faster than many small ones)."""
        pack = run[0][1].pack
        assert all(loc.pack == pack for _, loc in run)
        lo = min(loc.offset for _, loc in run)
        hi = max(loc.offset + loc.length for _, loc in run)
        data = self._get_range(pack, [cid for cid, _ in run], lo, hi - lo)
        return [self._open(cid, loc, data[loc.offset - lo : loc.offset - lo + loc.length]) for cid, loc in run]

    def _open(self, cid: ChunkId, loc: Location, blob: bytes, check_id: bool = False) -> bytes:
        try:
            data = blobs.open_chunk(self.opener, cid, blob, loc.flags, loc.raw_length)
        except (AuthenticationFailed, zstandard.ZstdError) as exc:
            why = f"chunk {cid.hex()[:16]} in pack {loc.pack.hex()[:16]} is damaged ({exc or type(exc).__name__})"
            self.record_damage(DamageRecord((), ((cid, loc.pack),), (why,)))
            raise CorruptRepository(f"{why}; recorded, so the next backup of a source that holds it stores it again") from None
        if len(data) != loc.raw_length or (check_id and self.ids.chunk_id(data) != cid):
            why = f"chunk {cid.hex()[:16]} in pack {loc.pack.hex()[:16]} does not match its id"
            self.record_damage(DamageRecord((), ((cid, loc.pack),), (why,)))
            raise CorruptRepository(f"{why}; recorded, so the next backup of a source that holds it stores it again")
        return data

    def locate(self, index: ChunkIndex, cid: ChunkId) -> Location:
        """Where a chunk that must exist is. Before it is called missing, the index lists the
        store again (another process's delta, a listing that lagged) and then, once, is rebuilt
        from the deltas without its cache, and then the packs no delta names are read from their
        footers (an index delta lost or unreadable)."""
        loc = index.lookup(cid)
        if loc is None and not index.exhausted:
            for step in (lambda: index.refresh(), lambda: index.refresh(True), index.adopt):
                step()
                loc = index.lookup(cid)
                if loc is not None:
                    break
            else:
                index.exhausted = True  # once a run: a damaged repository misses many chunks
        if loc is not None:
            return loc
        if cid in index.damage.cids:
            raise CorruptRepository(
                f"chunk {cid.hex()[:16]} was found damaged and no good copy is left; a new backup of a source "
                "that holds it stores it again, and `liferaft verify` names what it costs"
            )
        raise CorruptRepository(f"chunk {cid.hex()[:16]} is not in the index")

    # --- snapshots ----------------------------------------------------------------------------
    def snapshot_ids(self) -> list[SnapshotId]:
        """Every snapshot's id; a stray object in the folder is left out, with a warning."""
        found = valid_names(self.store, names.SNAPSHOTS, SNAPSHOT_NAME, "snapshot", self.warnings)
        return [SnapshotId(names.leaf(n)) for n in found]

    def load_snapshot(self, sid: SnapshotId) -> Snapshot:
        raw = self.store.get(names.snapshot(sid))
        if hashlib.sha256(raw).hexdigest() != sid:
            raise CorruptRepository(f"snapshot {sid[:12]} does not match its name")
        try:
            return Snapshot.from_bytes(self.opener.open(raw, SNAPSHOT_AD))
        except (AuthenticationFailed, FormatError) as exc:
            raise CorruptRepository(f"snapshot {sid[:12]} is unreadable ({exc})") from None

    def snapshots(self, damaged: list[str] | None = None) -> list[tuple[SnapshotId, Snapshot]]:
        """Every snapshot, oldest first. With a damaged list, a snapshot that cannot be read is
        left out and its message appended there (one damaged snapshot must not hide the others);
        else it raises CorruptRepository. They are read in parallel (one request each)."""

        def load(sid: SnapshotId) -> Snapshot | CorruptRepository:
            try:
                return self.load_snapshot(sid)
            except CorruptRepository as exc:
                return exc

        ids = self.snapshot_ids()
        with ThreadPoolExecutor(max(1, min(len(ids), self.store.capabilities.connections))) as pool:
            loaded = list(pool.map(load, ids))
        found = []
        for sid, snap in zip(ids, loaded, strict=True):
            if isinstance(snap, CorruptRepository):
                if damaged is None:
                    raise snap
                damaged.append(snap.message)
            else:
                found.append((sid, snap))
        return sorted(found, key=lambda item: (item[1].time, item[0]))

    def resolve(self, name: str) -> SnapshotId:
        """A snapshot id from a unique hex prefix. 'latest' is chosen by ``ops.snapshots.select``
        alone, which refuses it when it could mean another machine's disk."""
        if not re.fullmatch(r"[0-9a-f]{1,64}", name):
            raise SnapshotNotFound(name=name)
        matches = [sid for sid in self.snapshot_ids() if sid.startswith(name)]
        if not matches:  # list again: a listing may lag behind a snapshot just written
            matches = [sid for sid in self.snapshot_ids() if sid.startswith(name)]
        if not matches:
            raise SnapshotNotFound(name=name)
        if len(matches) > 1:
            raise AmbiguousSnapshot(name=name, count=len(matches))
        return matches[0]

    # --- settings -----------------------------------------------------------------------------
    def settings(self) -> RepoSettings:
        """The repository's settings (the defaults where none were saved)."""
        try:
            raw = self.store.get(names.SETTINGS)
        except ObjectMissing:
            return RepoSettings()
        try:
            return RepoSettings.from_bytes(self.opener.open(raw, SETTINGS_AD))
        except (AuthenticationFailed, FormatError) as exc:
            raise CorruptRepository(
                detail=f"its settings object is unreadable ({exc}): set them again with 'liferaft settings'"
            ) from None

    def save_settings(self, settings: RepoSettings) -> None:
        self.store.put(names.SETTINGS, Sealer(self.master).seal(settings.checked().to_bytes(), SETTINGS_AD))
        self.store.sync()

    def save_snapshot(self, sealer: Sealer, snap: Snapshot) -> SnapshotId:
        raw = sealer.seal(snap.to_bytes(), SNAPSHOT_AD)
        sid = SnapshotId(hashlib.sha256(raw).hexdigest())
        self.store.put(names.snapshot(sid), raw)
        return sid
