"""``sagactl worker``: drive sagas from the saga log with no coordinator but the database (and
SQS for replies). Any number of workers on any number of machines share one PostgreSQL (or,
on one machine, one SQLite file).

- ``concurrency`` driver threads, each with its own store connection and engine (its own lease
  owner ``host:pid:nonce``), claim one saga at a time (Store.claim: due or lapsed, SKIP
  LOCKED) and drive it with the same engine, idempotency keys and snapshot as ``run``. The
  engine runs in worker mode: a step sent over SQS, or waiting out a backoff, puts the saga
  aside (released, ``wake_at`` set) instead of holding the thread.
- A listener thread per reply queue (discovered from the snapshots of released sagas) reads
  replies; a driver thread applies each one (Engine.apply_reply) and drives on. A reply is
  deleted only after it was applied (or found of no use: unknown saga or step, duplicate,
  stale); one for a saga another driver holds is handed back for later.
- Sagas held by a process of this host that died are taken over at once (not at lease expiry).
- ``stop()`` (SIGTERM): no new claims; sagas in hand are put aside at their next step
  boundary (due at once for another worker); threads that are not done within ``grace``
  seconds are left (their leases lapse and another worker takes over).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sagactl.clock import Clock, SystemClock
from sagactl.definitions.model import from_snapshot
from sagactl.engine.control import Engine
from sagactl.engine.lease import holder_is_dead, lease_until
from sagactl.engine.metrics import WorkerMetrics
from sagactl.errors import LeaseHeldError, SagactlError, UnavailableError
from sagactl.models import Phase, idempotency_key
from sagactl.store.base import Store
from sagactl.transports import TransportPool
from sagactl.transports.sqs import SqsTransport, read_reply

log = logging.getLogger("sagactl.engine.worker")

REPLY_WAIT = 10  # seconds a listener long-polls (also how long stopping may wait for it)
# Seconds a received reply stays hidden while a driver applies it. Short, because a worker
# killed with replies in hand cannot give them back: they reappear only when this runs out, and
# a saga whose step times out first sends its command again. Replies wait in hand for at most
# REPLY_BUFFER x concurrency of them to be applied; one that waits longer is received again
# and applied once (the second copy finds nobody waiting and is deleted).
REPLY_HOLD = 10
REPLY_BUFFER = 2  # replies received and waiting for a driver, per driver thread
DELETE_AFTER = 0.5  # seconds an applied reply may wait to be deleted with others (10 per call)
BUSY_RETRY = 2  # seconds until a reply for a busy saga is visible again
RECONNECT = 2.0  # seconds a driver thread waits before it connects again to a database that went away
DISCOVER_EVERY = 5.0  # seconds between looks for new reply queues and dead holders on this host


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    concurrency: int = 4
    types: tuple[str, ...] = ()
    grace: float = 30.0
    poll: float = 1.0  # the longest an idle driver thread waits before it looks for work again
    reply_wait: int = REPLY_WAIT  # seconds a reply listener long-polls


EngineFactory = Callable[[Store, WorkerMetrics, threading.Event], Engine]
ListenerFactory = Callable[[dict[str, Any]], list[SqsTransport]]


@dataclass
class _Reply:
    transport: SqsTransport
    message: Any


@dataclass
class Worker:
    """One worker process. ``open_store`` gives each thread its connection; ``make_engine``
    an engine in worker mode on it; ``listeners`` the SQS reply endpoints of a definition
    snapshot (each a transport that can listen)."""

    open_store: Callable[[], Store]
    make_engine: EngineFactory
    listeners: ListenerFactory
    options: WorkerOptions = field(default_factory=WorkerOptions)
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    clock: Clock = field(default_factory=SystemClock)
    location: str = ""  # the saga log, for messages

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self.work = threading.Event()  # set when there may be work: a reply came, a saga was put aside
        self.replies: queue.Queue[_Reply] = queue.Queue(maxsize=REPLY_BUFFER * self.options.concurrency)
        self.takeovers: queue.Queue[tuple[str, str]] = queue.Queue()
        self.listening: dict[Any, threading.Thread] = {}
        self.listening_lock = threading.Lock()
        self.deletions: dict[Any, tuple[SqsTransport, list[tuple[float, Any]]]] = {}  # reply queue -> done replies
        self.deletions_lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.host = socket.gethostname()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the driver threads and the watcher (reply queues, dead holders)."""
        self.metrics.up.set(1)
        for n in range(self.options.concurrency):
            self._spawn(self._drive_loop, f"sagactl-driver-{n}")
        self._spawn(self._watch_loop, "sagactl-watch")

    def stop(self) -> None:
        """Stop claiming; sagas in hand are put aside at their next step boundary."""
        self.stopping.set()
        self.work.set()
        self.metrics.up.set(0)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every thread to end (at most ``timeout`` s); True when they all did. Replies
        received and not yet applied are handed back to their queues at once."""
        deadline = None if timeout is None else self.clock.monotonic() + timeout
        threads = self.threads + list(self.listening.values())
        for thread in threads:
            remaining = None if deadline is None else max(0.0, deadline - self.clock.monotonic())
            thread.join(remaining)
            self._hand_back()
        self._delete_done(force=True)
        return not any(t.is_alive() for t in threads)

    def _hand_back(self) -> None:
        while True:
            try:
                item = self.replies.get_nowait()
            except queue.Empty:
                return
            item.transport.later(item.message, 0)

    def healthy(self) -> bool:
        return not self.stopping.is_set() and all(t.is_alive() for t in self.threads)

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    # -- driver threads ---------------------------------------------------------------------

    def _drive_loop(self) -> None:
        """Take jobs until stopped. The database going away (a restart, a failover) costs a
        pause and a new connection, never the thread; a bug in one saga is logged and the
        thread goes on with the next."""
        store: Store | None = None
        engine: Engine | None = None
        idle = 0.05
        try:
            while not self.stopping.is_set():
                try:
                    if store is None or engine is None:
                        store = self.open_store()
                        engine = self.make_engine(store, self.metrics, self.stopping)
                    busy = self._one_job(store, engine)
                except UnavailableError as exc:
                    log.warning("%s; retrying in %gs", exc.one_line(), RECONNECT)
                    _close(store, engine)
                    store = engine = None
                    self.stopping.wait(RECONNECT)
                    continue
                except Exception:
                    log.exception("unexpected error while driving; going on with the next saga")
                    busy = False
                self._delete_done()
                if busy:
                    idle = 0.05
                    continue
                self.work.wait(idle * random.uniform(0.5, 1.0))
                self.work.clear()
                idle = min(self.options.poll, idle * 2)
        finally:
            _close(store, engine)

    def _one_job(self, store: Store, engine: Engine) -> bool:
        """Apply a reply, take over a dead holder's saga or claim one; False when there was
        nothing to do."""
        try:
            reply = self.replies.get_nowait()
        except queue.Empty:
            pass
        else:
            self._apply(engine, reply)
            return True
        try:
            saga_id, dead = self.takeovers.get_nowait()
        except queue.Empty:
            pass
        else:
            now = self.clock.now()
            if store.take_over_lease(saga_id, engine.owner, dead, lease_until(now)):
                self.metrics.claims.labels("dead_holder").inc()
                self.metrics.takeovers.inc()
                log.info("%s taken over from dead process %s", saga_id, dead)
                self._drive(engine, saga_id)
            return True
        now = self.clock.now()
        claimed = store.claim(engine.owner, lease_until(now), now, 1, self.options.types)
        for claim in claimed:
            self.metrics.claims.labels("lapsed" if claim.lapsed else "due").inc()
            if claim.lapsed:
                self.metrics.takeovers.inc()
            self._drive(engine, claim.saga_id)
        return bool(claimed)

    def _drive(self, engine: Engine, saga_id: str) -> None:
        self.metrics.in_flight.inc()
        try:
            result = engine.resume(saga_id, held=True)  # claimed or taken over: the lease is ours
            if result.saga.wake_at is not None:
                self._listen_for(result.saga.definition)
                self.work.set()
        except SagactlError as exc:
            log.warning("%s", exc.one_line())
        finally:
            self.metrics.in_flight.dec()

    def _apply(self, engine: Engine, item: _Reply) -> None:
        """Apply one reply; delete it once applied or of no use, hand it back if its saga is busy."""
        reply = read_reply(item.message)
        if reply is None:
            return self._ignored(item, "not a saga reply")
        keys = {p: idempotency_key(reply.saga_id, reply.step_name, p) for p in Phase}
        phases = [p for p in Phase if reply.answers(p) and reply.key in (None, keys[p])]
        # The reply queue, not the listener's command queue: endpoints that share a reply queue
        # share its listener, whose command queue may be another step's.
        queue_name = item.transport.reply_name
        self.metrics.in_flight.inc()
        try:
            for phase in phases:
                result = engine.apply_reply(reply.saga_id, reply.step_name, phase, reply.as_reply(queue_name))
                if result is not None:
                    self.metrics.replies.labels("applied").inc()
                    self._done(item)
                    state = result.saga.state.value
                    log.info("%s %s: %s applied (%s)", reply.saga_id, reply.step_name, reply.kind, state)
                    if result.saga.wake_at is not None:
                        self._listen_for(result.saga.definition)
                    return None
        except LeaseHeldError:
            self.metrics.replies.labels("retried").inc()
            item.transport.later(item.message, BUSY_RETRY)  # its saga is being driven: later
            return None
        except SagactlError as exc:
            log.warning("reply for %s %s not applied: %s", reply.saga_id, reply.step_name, exc.one_line())
            item.transport.later(item.message, BUSY_RETRY)
            return None
        finally:
            self.metrics.in_flight.dec()
        return self._ignored(item, f"nobody awaits {reply.kind} from {reply.saga_id} {reply.step_name}")

    def _ignored(self, item: _Reply, why: str) -> None:
        self.metrics.replies.labels("ignored").inc()
        log.warning("reply ignored and deleted: %s", why)
        self._done(item)

    def _done(self, item: _Reply) -> None:
        """Delete a reply soon, with others of its queue (10 in one call, or within DELETE_AFTER)."""
        with self.deletions_lock:
            _, pending = self.deletions.setdefault(item.transport.reply_queue, (item.transport, []))
            pending.append((self.clock.monotonic(), item.message))
            full = len(pending) >= 10
        if full:
            self._delete_done()

    def _delete_done(self, *, force: bool = False) -> None:
        """Delete the replies waiting to be: a queue's 10, one that waited DELETE_AFTER, or all."""
        now = self.clock.monotonic()
        due: list[tuple[SqsTransport, list[Any]]] = []
        with self.deletions_lock:
            for transport, pending in self.deletions.values():
                if pending and (force or len(pending) >= 10 or now - pending[0][0] >= DELETE_AFTER):
                    due.append((transport, [message for _, message in pending]))
                    pending.clear()
        for transport, messages in due:
            try:
                transport.done(*messages)
            except SagactlError as exc:  # SQS unreachable: they come back after their hold
                log.warning("%s", exc.one_line())

    # -- reply queues and dead holders -------------------------------------------------------

    def _watch_loop(self) -> None:
        store: Store | None = None
        try:
            while not self.stopping.is_set():
                try:
                    store = store or self.open_store()
                    for definition in store.released_definitions():
                        self._listen_for(definition)
                    for saga_id, owner in store.held_on(self.host):
                        if holder_is_dead(owner):
                            self.takeovers.put((saga_id, owner))
                            self.work.set()
                except SagactlError as exc:
                    log.warning("%s", exc.one_line())
                    if isinstance(exc, UnavailableError) and store is not None:
                        with contextlib.suppress(Exception):
                            store.close()
                        store = None
                self.stopping.wait(DISCOVER_EVERY)
        finally:
            if store is not None:
                store.close()

    def _listen_for(self, snapshot: dict[str, Any]) -> None:
        """Listen on the reply queues of a definition's SQS endpoints (once each)."""
        try:
            transports = self.listeners(snapshot)
        except (SagactlError, KeyError, TypeError, ValueError) as exc:
            log.warning("cannot listen for the replies of a definition: %s", exc)
            return
        for transport in transports:
            key = transport.reply_queue
            with self.listening_lock:
                if key in self.listening or self.stopping.is_set():
                    transport.close()
                    continue
                thread = threading.Thread(
                    target=self._listen_loop, args=(transport,), name=f"sagactl-replies-{key[1]}", daemon=True
                )
                self.listening[key] = thread
            log.info("listening for replies on %s", key[1])
            thread.start()

    def _listen_loop(self, transport: SqsTransport) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    messages = transport.listen(self.options.reply_wait, REPLY_HOLD)
                except SagactlError as exc:
                    log.warning("%s", exc.one_line())
                    self.stopping.wait(5.0)
                    continue
                for message in messages:
                    self.replies.put(_Reply(transport, message))
                    self.work.set()
        finally:
            transport.close()


def _close(store: Store | None, engine: Engine | None) -> None:
    """A driver thread's connections: its store's and the transports its engine kept open."""
    if store is not None:
        with contextlib.suppress(Exception):
            store.close()
    if engine is not None and isinstance(engine.transport_factory, TransportPool):
        engine.transport_factory.close()


def listeners_of(snapshot: dict[str, Any], open_endpoint: Callable[[Any, str], Any]) -> list[SqsTransport]:
    """The SQS transports of a definition snapshot's endpoints (``open_endpoint`` opens one)."""
    definition = from_snapshot(snapshot)
    found = []
    for endpoint in definition.endpoints.values():
        if endpoint.type == "sqs":
            transport = open_endpoint(definition, endpoint.name)
            if isinstance(transport, SqsTransport):
                found.append(transport)
    return found
