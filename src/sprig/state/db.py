"""The core's persistent state in one SQLite file (``state.db``).

What is stored:

* ``components``: the desired set of components — name, version, the accepted recipe, the effective
  configuration, run-as and resource limits, whether it is a root of the deployment (explicitly
  deployed, as opposed to pulled in as a dependency) and whether it was stopped by the user.
* ``deployments``: the queue and history, each with the snapshot of ``components`` taken just before
  it was applied, so that a failed (or interrupted) deployment can be rolled back exactly.
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
"""

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

    def enqueue_deployment(self, document: Mapping[str, Any]) -> DeploymentRecord:
        """Persist a validated deployment request: once this returns, it is acknowledged."""
        now = time.time()
        dep_id = str(uuid.uuid4())
        with self.transaction() as conn:
            (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM deployments").fetchone()
            conn.execute(
                "INSERT INTO deployments(id, seq, created, updated, document, status)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (dep_id, seq, now, now, json.dumps(document), QUEUED),
            )
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
        """Mark a deployment done; ``restore`` puts that component set back in the same commit."""
        with self.transaction() as conn:
            if restore is not None:
                self.replace_components(conn, {r.name: r for r in restore})
                self.clear_health(conn, [r.name for r in restore])
            conn.execute(
                "UPDATE deployments SET status = ?, reason = ?, updated = ? WHERE id = ?",
                (status, reason, time.time(), dep_id),
            )

    def fail_queued(self, dep_id: str, reason: str) -> None:
        """Reject a queued deployment without touching components."""
        self.finish_deployment(dep_id, FAILED, reason)

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
