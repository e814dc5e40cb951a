"""The core's persistent state in one SQLite file (``state.db``).

What is stored:

* ``components``: the desired set of components — name, version, the accepted recipe, the effective
  configuration, run-as and resource limits, whether it is a root of the deployment (explicitly
  deployed, as opposed to pulled in as a dependency) and whether it was stopped by the user.
* ``shadows``: the local device shadows of ``aws.greengrass.ShadowManager`` (thing, shadow name,
  ``''`` for the classic shadow), the document as JSON (NULL once deleted: the row keeps the
  version, which a new shadow of that name continues) and when it last changed; ``shadow_sync``
  what each synchronized shadow looked like at its last sync with the broker, and the local and
  cloud versions then.
* ``deployments``: the queue and history, each with the snapshot of ``components`` taken just before
  it was applied, so that a failed (or interrupted) deployment can be rolled back exactly. The
  history is bounded (:data:`HISTORY_KEEP` finished deployments; only the newest finished one keeps
  its snapshot, as the nucleus keeps only its last deployment directory).
* ``component_previous_versions`` and ``deployment_pins``: what the package store must keep (the
  version each component had before its last change; the versions a queued deployment was
  accepted with). See ``sprig.deployment.store``.
* ``pending_events``: acknowledged ``Event`` invocations that have not finished yet
  (:class:`EventStore`, on its own connection), so they run after a crash.

Every change is one transaction; the database runs in WAL mode with ``synchronous=FULL`` so that an
acknowledged change survives ``kill -9`` of the core and a power cut.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sprig.disk import WATCH, DiskFull, is_disk_full

_SCHEMA = """
CREATE TABLE IF NOT EXISTS components (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    recipe TEXT NOT NULL,
    configuration TEXT NOT NULL,
    run_with TEXT,
    system_limits TEXT,
    is_root INTEGER NOT NULL DEFAULT 0,
    user_stopped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    document TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    snapshot TEXT
);
CREATE TABLE IF NOT EXISTS component_health (
    name TEXT PRIMARY KEY,
    broken INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shadows (
    thing TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT,
    version INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (thing, name)
);
CREATE TABLE IF NOT EXISTS shadow_sync (
    thing TEXT NOT NULL,
    name TEXT NOT NULL,
    last_synced TEXT,
    local_version INTEGER NOT NULL,
    cloud_version INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (thing, name)
);
"""

# Retention: what the package store keeps besides the current versions.
_RETENTION_SCHEMA = """
CREATE TABLE IF NOT EXISTS component_previous_versions (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deployment_pins (
    deployment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (deployment_id, name)
);
"""

#: Finished deployments kept in the history (``sprig deployment list`` shows 10 by default; the
#: Greengrass IPC ``ListLocalDeployments`` lists the last 5). Queued and in-progress ones are
#: never dropped.
HISTORY_KEEP = 20

# Deployment statuses, as the Greengrass CLI prints them (QUEUED is Sprig's, before IN_PROGRESS).
QUEUED = "QUEUED"
IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"


@dataclass(frozen=True)
class ComponentRecord:
    """One desired component, as the last accepted deployment left it."""

    name: str
    version: str
    recipe: dict[str, Any]
    configuration: dict[str, Any]
    run_with: dict[str, Any] | None = None
    system_limits: dict[str, Any] | None = None
    is_root: bool = False
    user_stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "recipe": self.recipe,
            "configuration": self.configuration,
            "run_with": self.run_with,
            "system_limits": self.system_limits,
            "is_root": self.is_root,
            "user_stopped": self.user_stopped,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentRecord:
        return cls(
            name=data["name"],
            version=data["version"],
            recipe=data["recipe"],
            configuration=data["configuration"],
            run_with=data.get("run_with"),
            system_limits=data.get("system_limits"),
            is_root=bool(data.get("is_root")),
            user_stopped=bool(data.get("user_stopped")),
        )


@dataclass(frozen=True)
class DeploymentRecord:
    id: str
    seq: int
    created: float
    updated: float
    document: dict[str, Any]
    status: str
    reason: str = ""
    snapshot: list[ComponentRecord] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "deploymentId": self.id,
            "status": self.status,
            "reason": self.reason,
            "createdAt": self.created,
            "updatedAt": self.updated,
            "document": self.document,
        }


@dataclass(frozen=True)
class ShadowRecord:
    """A stored device shadow; ``document`` None: deleted (``version`` is the deleted one's)."""

    thing: str
    name: str
    document: dict[str, Any] | None
    version: int
    updated: float


@dataclass(frozen=True)
class ShadowSyncRecord:
    """A synchronized shadow at its last sync: the state both sides agreed on (None: none)
    and the local and cloud versions at that moment."""

    thing: str
    name: str
    last_synced: dict[str, Any] | None
    local_version: int
    cloud_version: int


class StateDB:
    """Transactional access to ``state.db``. Not thread-safe: use it from the core's event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Owner-only from the first byte: SQLite gives the -wal and -shm files the database
        # file's mode, and they hold configurations (secrets included) too.
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if file.exists():
                file.chmod(0o600)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        path.chmod(0o600)
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self._conn.executescript(_RETENTION_SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all.

        Raises:
            DiskFull: no space left for the write (nothing was changed; the message names
                ``state.db``), instead of SQLite's bare "database or disk is full".
        """
        with _disk_full_as_error(self.path, "cannot write the core's state"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (SQLITE_FULL) leaves the transaction open: roll it back, or
                # every later BEGIN fails ("cannot start a transaction within a transaction").
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    # -- components -------------------------------------------------------------------------

    def components(self) -> dict[str, ComponentRecord]:
        rows = self._conn.execute(
            "SELECT name, version, recipe, configuration, run_with, system_limits, is_root,"
            " user_stopped FROM components ORDER BY name"
        ).fetchall()
        return {row[0]: _component_from_row(row) for row in rows}

    def component(self, name: str) -> ComponentRecord | None:
        row = self._conn.execute(
            "SELECT name, version, recipe, configuration, run_with, system_limits, is_root,"
            " user_stopped FROM components WHERE name = ?",
            (name,),
        ).fetchone()
        return _component_from_row(row) if row else None

    def replace_components(self, conn: sqlite3.Connection,
                           records: Mapping[str, ComponentRecord]) -> None:
        """Make ``records`` the whole desired set (inside a transaction)."""
        conn.execute("DELETE FROM components")
        for rec in records.values():
            _insert_component(conn, rec)

    def put_component(self, rec: ComponentRecord) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM components WHERE name = ?", (rec.name,))
            _insert_component(conn, rec)

    def set_user_stopped(self, name: str, stopped: bool) -> None:
        rec = self.component(name)
        if rec is not None:
            self.put_component(replace(rec, user_stopped=stopped))

    # -- health (BROKEN survives restarts) ----------------------------------------------------

    def set_health(self, name: str, *, broken: bool, last_error: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO component_health(name, broken, last_error) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET broken = excluded.broken,"
                " last_error = excluded.last_error",
                (name, int(broken), last_error),
            )

    def health(self) -> dict[str, tuple[bool, str]]:
        rows = self._conn.execute("SELECT name, broken, last_error FROM component_health")
        return {name: (bool(broken), err) for name, broken, err in rows}

    def clear_health(self, conn: sqlite3.Connection, names: list[str]) -> None:
        conn.executemany("DELETE FROM component_health WHERE name = ?", [(n,) for n in names])

    # -- deployments -------------------------------------------------------------------------

    def enqueue_deployment(self, document: Mapping[str, Any],
                           pins: Mapping[str, str] | None = None) -> DeploymentRecord:
        """Persist a validated deployment request: once this returns, it is acknowledged.

        ``pins`` (name -> version) are the component versions it was accepted with: the package
        store keeps them until it finishes."""
        now = time.time()
        dep_id = str(uuid.uuid4())
        with self.transaction() as conn:
            (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments").fetchone()
            conn.execute(
                "INSERT INTO deployments(id, seq, created, updated, document, status)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (dep_id, seq, now, now, json.dumps(document), QUEUED),
            )
            conn.executemany(
                "INSERT INTO deployment_pins(deployment_id, name, version) VALUES (?, ?, ?)",
                [(dep_id, n, v) for n, v in (pins or {}).items()])
        found = self.deployment(dep_id)
        assert found is not None
        return found

    def deployment(self, dep_id: str) -> DeploymentRecord | None:
        row = self._conn.execute(
            "SELECT id, seq, created, updated, document, status, reason, snapshot"
            " FROM deployments WHERE id = ?",
            (dep_id,),
        ).fetchone()
        return _deployment_from_row(row) if row else None

    def deployments(self, limit: int = 10) -> list[DeploymentRecord]:
        rows = self._conn.execute(
            "SELECT id, seq, created, updated, document, status, reason, snapshot"
            " FROM deployments ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_deployment_from_row(r) for r in rows]

    def next_pending(self) -> DeploymentRecord | None:
        """The next deployment: an interrupted IN_PROGRESS one first, then the oldest QUEUED."""
        row = self._conn.execute(
            "SELECT id, seq, created, updated, document, status, reason, snapshot FROM deployments"
            " WHERE status IN (?, ?) ORDER BY (status = ?) DESC, seq ASC LIMIT 1",
            (IN_PROGRESS, QUEUED, IN_PROGRESS),
        ).fetchone()
        return _deployment_from_row(row) if row else None

    def begin_deployment(self, dep_id: str, target: Mapping[str, ComponentRecord]) -> None:
        """Atomically: snapshot the current components, install ``target``, mark IN_PROGRESS."""
        snapshot = [rec.to_json() for rec in self.components().values()]
        with self.transaction() as conn:
            self.replace_components(conn, target)
            conn.execute(
                "UPDATE deployments SET status = ?, snapshot = ?, updated = ? WHERE id = ?",
                (IN_PROGRESS, json.dumps(snapshot), time.time(), dep_id),
            )
            # A new deployment of a component is what fixes BROKEN.
            self.clear_health(conn, list(target))

    def finish_deployment(self, dep_id: str, status: str, reason: str = "",
                          restore: list[ComponentRecord] | None = None) -> None:
        """Mark a deployment done; ``restore`` puts that component set back in the same commit.

        In the same commit: the components whose version changed remember the one they had
        (kept for a rollback), and the history is trimmed."""
        with self.transaction() as conn:
            if restore is not None:
                self.replace_components(conn, {r.name: r for r in restore})
                self.clear_health(conn, [r.name for r in restore])
            else:
                _record_previous_versions(conn, dep_id)
            conn.execute(
                "UPDATE deployments SET status = ?, reason = ?, updated = ? WHERE id = ?",
                (status, reason, time.time(), dep_id),
            )
            _trim_history(conn, keep_snapshot_of=dep_id)

    def fail_queued(self, dep_id: str, reason: str) -> None:
        """Reject a queued deployment without touching components."""
        self.finish_deployment(dep_id, FAILED, reason)

    # -- device shadows (aws.greengrass.ShadowManager) ----------------------------------------

    def shadow(self, thing: str, name: str) -> ShadowRecord | None:
        """The stored shadow (``name`` ``''``: classic), deleted ones included."""
        row = self._conn.execute(
            "SELECT document, version, updated FROM shadows WHERE thing = ? AND name = ?",
            (thing, name)).fetchone()
        if row is None:
            return None
        document, version, updated = row
        return ShadowRecord(thing, name, json.loads(document) if document else None, version,
                            updated)

    def put_shadow(self, thing: str, name: str, document: Mapping[str, Any] | None,
                   version: int) -> None:
        """Store a shadow's new document (None: deleted, keeping ``version``); once this
        returns the change is durable (the caller acknowledges it only then)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO shadows(thing, name, document, version, updated)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(thing, name) DO UPDATE SET"
                " document = excluded.document, version = excluded.version,"
                " updated = excluded.updated",
                (thing, name, json.dumps(document) if document is not None else None, version,
                 time.time()))

    def named_shadows(self, thing: str, offset: int = 0, limit: int = -1) -> list[str]:
        """Names of the thing's existing named shadows, sorted (classic and deleted excluded)."""
        rows = self._conn.execute(
            "SELECT name FROM shadows WHERE thing = ? AND name != '' AND document IS NOT NULL"
            " ORDER BY name LIMIT ? OFFSET ?", (thing, limit, offset)).fetchall()
        return [r[0] for r in rows]

    def shadow_sync(self, thing: str, name: str) -> ShadowSyncRecord | None:
        row = self._conn.execute(
            "SELECT last_synced, local_version, cloud_version FROM shadow_sync"
            " WHERE thing = ? AND name = ?", (thing, name)).fetchone()
        if row is None:
            return None
        last, local_version, cloud_version = row
        return ShadowSyncRecord(thing, name, json.loads(last) if last else None,
                                local_version, cloud_version)

    def put_shadow_sync(self, rec: ShadowSyncRecord) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO shadow_sync(thing, name, last_synced, local_version, cloud_version,"
                " updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(thing, name) DO UPDATE SET"
                " last_synced = excluded.last_synced, local_version = excluded.local_version,"
                " cloud_version = excluded.cloud_version, updated = excluded.updated",
                (rec.thing, rec.name,
                 json.dumps(rec.last_synced) if rec.last_synced is not None else None,
                 rec.local_version, rec.cloud_version, time.time()))
    # -- retention ---------------------------------------------------------------------------

    def previous_versions(self) -> dict[str, str]:
        """Each component's version before its last version change."""
        rows = self._conn.execute("SELECT name, version FROM component_previous_versions")
        return dict(rows.fetchall())

    def pinned_versions(self) -> dict[str, set[str]]:
        """Versions queued or in-progress deployments need: those they were accepted with, and
        for one in progress the versions its rollback would restore."""
        pinned: dict[str, set[str]] = {}
        rows = self._conn.execute(
            "SELECT p.name, p.version FROM deployment_pins p JOIN deployments d"
            " ON d.id = p.deployment_id WHERE d.status IN (?, ?)", (QUEUED, IN_PROGRESS))
        for name, version in rows:
            pinned.setdefault(name, set()).add(version)
        for (snapshot,) in self._conn.execute(
                "SELECT snapshot FROM deployments WHERE status = ? AND snapshot IS NOT NULL",
                (IN_PROGRESS,)):
            for rec in json.loads(snapshot):
                pinned.setdefault(rec["name"], set()).add(rec["version"])
        return pinned

    def trim_history(self) -> None:
        """Drop what the bounded history no longer keeps (also done by every finish)."""
        with self.transaction() as conn:
            newest = conn.execute(
                "SELECT id FROM deployments WHERE status IN (?, ?) ORDER BY seq DESC LIMIT 1",
                (SUCCEEDED, FAILED)).fetchone()
            _trim_history(conn, keep_snapshot_of=newest[0] if newest else "")

    # -- meta --------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _record_previous_versions(conn: sqlite3.Connection, dep_id: str) -> None:
    """A finishing deployment left its components in place: a component whose version changed
    remembers the one it had (the nucleus's ``previousVersion``); a removed one forgets."""
    row = conn.execute("SELECT snapshot FROM deployments WHERE id = ?", (dep_id,)).fetchone()
    if row is None or row[0] is None:
        return                         # rejected before it changed anything
    before = {rec["name"]: rec["version"] for rec in json.loads(row[0])}
    now = dict(conn.execute("SELECT name, version FROM components").fetchall())
    for name, version in now.items():
        if name in before and before[name] != version:
            conn.execute("INSERT INTO component_previous_versions(name, version) VALUES (?, ?)"
                         " ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                         (name, before[name]))
    conn.executemany("DELETE FROM component_previous_versions WHERE name = ?",
                     [(n,) for n in before if n not in now])


def _trim_history(conn: sqlite3.Connection, keep_snapshot_of: str) -> None:
    """Keep the newest :data:`HISTORY_KEEP` finished deployments, and of those only the
    snapshot of ``keep_snapshot_of``; pins go with the deployments that are done."""
    finished = (SUCCEEDED, FAILED)
    conn.execute(
        "DELETE FROM deployments WHERE status IN (?, ?) AND id NOT IN (SELECT id FROM"
        " deployments WHERE status IN (?, ?) ORDER BY seq DESC LIMIT ?)",
        (*finished, *finished, HISTORY_KEEP))
    conn.execute("UPDATE deployments SET snapshot = NULL WHERE status IN (?, ?) AND id != ?"
                 " AND snapshot IS NOT NULL", (*finished, keep_snapshot_of))
    conn.execute("DELETE FROM deployment_pins WHERE deployment_id NOT IN (SELECT id FROM"
                 " deployments WHERE status IN (?, ?))", (QUEUED, IN_PROGRESS))


def _insert_component(conn: sqlite3.Connection, rec: ComponentRecord) -> None:
    conn.execute(
        "INSERT INTO components(name, version, recipe, configuration, run_with, system_limits,"
        " is_root, user_stopped) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.name,
            rec.version,
            json.dumps(rec.recipe),
            json.dumps(rec.configuration),
            json.dumps(rec.run_with) if rec.run_with is not None else None,
            json.dumps(rec.system_limits) if rec.system_limits is not None else None,
            int(rec.is_root),
            int(rec.user_stopped),
        ),
    )


def _component_from_row(row: tuple[Any, ...]) -> ComponentRecord:
    name, version, recipe, configuration, run_with, limits, is_root, user_stopped = row
    return ComponentRecord(
        name=name,
        version=version,
        recipe=json.loads(recipe),
        configuration=json.loads(configuration),
        run_with=json.loads(run_with) if run_with else None,
        system_limits=json.loads(limits) if limits else None,
        is_root=bool(is_root),
        user_stopped=bool(user_stopped),
    )


def _deployment_from_row(row: tuple[Any, ...]) -> DeploymentRecord:
    dep_id, seq, created, updated, document, status, reason, snapshot = row
    snap = None
    if snapshot:
        snap = [ComponentRecord.from_json(d) for d in json.loads(snapshot)]
    return DeploymentRecord(
        id=dep_id,
        seq=seq,
        created=created,
        updated=updated,
        document=json.loads(document),
        status=status,
        reason=reason,
        snapshot=snap,
    )


@contextmanager
def _disk_full_as_error(path: Path, what: str) -> Iterator[None]:
    """SQLITE_FULL / ENOSPC as :class:`DiskFull` naming ``path``; a success clears it."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        if not is_disk_full(e):
            raise
        WATCH.failed(path, "state.db")
        raise DiskFull(path, what) from e
    WATCH.recovered(path)


# -- pending Event invocations ------------------------------------------------------------------

_EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_events (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    function TEXT NOT NULL,
    payload BLOB NOT NULL,
    client_context TEXT,
    source TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_events_by_function ON pending_events(function, seq);
"""


@dataclass(frozen=True)
class PendingEvent:
    """An acknowledged Event invocation, as stored until it finished."""

    request_id: str
    function: str                    # the component name
    payload: bytes
    client_context: dict[str, Any] | None
    source: str
    created: float


class EventStore:
    """The ``pending_events`` table on a connection of its own.

    Why a second connection: the Lambda manager writes here from one worker thread (group
    commits off the event loop), while :class:`StateDB` stays on the loop; SQLite serialises
    the two writers (WAL, ``busy_timeout``). Use an instance from one thread at a time.
    Every write raises :class:`~sprig.disk.DiskFull` on a full disk, with nothing changed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._sync = "FULL"
        self._ready = False
        try:
            self._schema()
        except DiskFull:
            pass      # a core upgraded on a full disk still starts; the first write retries

    def _schema(self) -> None:
        if not self._ready:
            with _disk_full_as_error(self.path, "cannot create the table of pending events"):
                self._conn.executescript(_EVENTS_SCHEMA)
            self._ready = True

    def close(self) -> None:
        self._conn.close()

    def apply(self, add: Sequence[PendingEvent], remove: Iterable[str]) -> None:
        """Insert ``add`` and delete the ``remove`` request ids in one transaction (one
        fsync for the batch). An id added twice is stored once.

        A batch of deletes only is committed without an fsync (``synchronous=NORMAL``): the
        WAL is sequential, so the next synced commit makes it durable too, and losing it in a
        power cut only runs finished events again (at least once). Deletes then cost no disk
        flush on the accept path.
        """
        self._schema()
        sync = "FULL" if add else "NORMAL"
        if sync != self._sync:
            self._conn.execute(f"PRAGMA synchronous={sync}")
            self._sync = sync
        with _disk_full_as_error(self.path, "cannot store the Event invocation"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO pending_events(request_id, function, payload,"
                    " client_context, source, created) VALUES (?, ?, ?, ?, ?, ?)",
                    [(e.request_id, e.function, e.payload,
                      None if e.client_context is None else json.dumps(e.client_context),
                      e.source, e.created) for e in add])
                self._conn.executemany("DELETE FROM pending_events WHERE request_id = ?",
                                       [(r,) for r in remove])
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def pending(self, function: str | None = None) -> list[PendingEvent]:
        """The stored events (of one function), oldest first."""
        self._schema()
        sql = ("SELECT request_id, function, payload, client_context, source, created"
               " FROM pending_events")
        rows = (self._conn.execute(sql + " ORDER BY seq").fetchall() if function is None else
                self._conn.execute(sql + " WHERE function = ? ORDER BY seq",
                                   (function,)).fetchall())
        return [PendingEvent(rid, fn, bytes(payload),
                             json.loads(ctx) if ctx is not None else None, source, created)
                for rid, fn, payload, ctx, source, created in rows]

    def forget_except(self, functions: Iterable[str]) -> int:
        """Delete the events of every function not in ``functions`` (removed by a
        deployment); returns how many."""
        self._schema()
        keep = sorted(set(functions))
        marks = ",".join("?" * len(keep))
        with _disk_full_as_error(self.path, "cannot delete pending events"):
            cur = self._conn.execute(
                f"DELETE FROM pending_events WHERE function NOT IN ({marks})", keep)
        return cur.rowcount
