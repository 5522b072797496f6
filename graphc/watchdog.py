"""The watchdog of a distributed run: if a rank dies or hangs, every rank stops within a
bounded time, and one line names the rank and the step.

An MPI job cannot do this by itself: a rank blocked in an all-reduce waits forever for a peer
that hangs, and a peer that dies is reported by mpiexec without the step. So the ranks keep a
side channel outside MPI, as torchrun's rendezvous store does: rank 0 listens on a TCP port
(its address is broadcast over MPI at start-up) and every other rank connects to it. A thread
in each rank sends a heartbeat with the rank's step every `interval` seconds; rank 0's thread
(the hub) watches them all:

- a connection that closes without a goodbye: the rank died (noticed at once);
- no heartbeat for `timeout` seconds: the rank is stopped or its machine is gone;
- a rank whose step has not moved for `timeout` seconds, outside any collective, while
  another rank is past its step or waits inside a collective: that rank hangs (the others
  are waiting for it); before its first beat a rank is still starting and is not judged so;
- a rank that said goodbye (its program ended) while another rank has waited inside a
  collective for `timeout` seconds since: that one waits for a rank that is gone;
- every rank waiting inside a collective for `timeout` seconds: they are in different
  ones (a deadlock), as no rank is late for the others.

A rank that computes (or, rank 0, writes a checkpoint) for longer than `timeout` while the
others wait for it is reported as hanging: set the timeout above the longest such pause.

The hub prints one line (`graphc: rank 1 died at step 3; stopping all 2 ranks`), tells the
other ranks to stop, and every rank leaves with EXIT_CODE at once (os._exit: a rank blocked in
MPI cannot unwind; checkpoints are written by rename, so the last one is intact). When rank 0
itself dies or stops responding, the lowest surviving rank prints the line. The heartbeat
thread and the hub run while the main thread is inside MPI, which releases the GIL.

Messages are text lines: `beat STEP WAITING ENTERED`, `bye STEP` (rank -> hub) and `beat
STEP WAITING ENTERED`, `stop` (hub -> rank); WAITING is 1 while the rank's main thread is
inside a collective (runtime.collectives.waiting()), ENTERED the collectives it has entered
(runtime.collectives.entered()): a rank seen waiting at two beats with other counts went
through collectives in between (broadcast_'s one per array), rather than waiting in one.
"""
from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time

from ir.errors import GraphcError
from runtime.collectives import entered, waiting

DEFAULT_TIMEOUT_S = 60.0
EXIT_CODE = 1  # a peer failed: not the user's input (2), not a signal


def _stop(message: str | None) -> None:
    if message:
        sys.stderr.write(f"graphc: {message}\n")
        sys.stderr.flush()
    os._exit(EXIT_CODE)


class _Peer:
    def __init__(self, sock, rank):
        self.sock, self.rank = sock, rank
        self.buffer = b""
        self.step = -1  # -1: no step reported yet (compiling, loading)
        self.seen = self.moved = time.monotonic()
        self.waiting = False  # inside a collective (waiting for the others)
        self.waits_since = 0.0  # when it was first seen waiting in its current collective
        self.entered = -1  # collectives it had entered at its last beat (-1: not told)
        self.done = self.died = self.said_bye = False
        self.bye_at = 0.0


class Watchdog:
    """Started on every rank by `start(comm, ...)`; `beat(step)` after each step."""

    def __init__(self, rank, size, timeout):
        self.rank, self.size, self.timeout = rank, size, float(timeout)
        self.interval = max(0.05, min(1.0, self.timeout / 4))
        self.step = -1
        self._peers = []  # hub: one per other rank; other ranks: [hub]
        self._own = _Peer(None, rank)
        self._lock = threading.Lock()
        self._closed = False

    # ---- called by the program -----------------------------------------------------------
    def beat(self, step: int) -> None:
        """This rank has reached `step` (call it at the start of every step). Sent at once,
        so that a rank that dies in this step is reported with it (one send, ~10 us)."""
        step = int(step)
        if step != self.step:
            self.step = step
            with self._lock:
                self._send_beats()

    def close(self) -> None:
        """This rank's program ended normally: a goodbye, not a failure."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for peer in self._peers:
                try:
                    peer.sock.sendall(f"bye {self.step}\n".encode())
                except OSError:
                    pass

    # ---- start-up ---------------------------------------------------------------------------
    def connect(self, comm, address: str) -> str | None:
        """Rank 0 accepts every other rank's connection, the others connect to it: None, or
        why this rank could not (its sockets closed). The thread starts after `start` has
        made the ranks agree on the outcome."""
        deadline = time.monotonic() + self.timeout
        if self.rank == 0:
            # one machine: listen on loopback only; many: on every interface
            server = socket.create_server((address if address.startswith("127.") else "", 0))
            port = server.getsockname()[1]
            comm.bcast(port, root=0)
            server.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                for _ in range(self.size - 1):
                    sock, _ = server.accept()
                    sock.settimeout(self.timeout)
                    rank = int(sock.recv(16).decode().strip() or -1)
                    sock.settimeout(None)
                    self._peers.append(_Peer(sock, rank))
            except (OSError, ValueError):
                self._close_sockets()
                return (f"watchdog: only {len(self._peers) + 1} of {self.size} ranks connected "
                        f"to rank 0 at {address} within {self.timeout:g} s")
            finally:
                server.close()
            return None
        port = comm.bcast(None, root=0)
        while True:
            try:
                sock = socket.create_connection((address, port), timeout=1.0)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    return (f"watchdog: rank {self.rank} cannot reach rank 0 at "
                            f"{address}:{port} ({exc}); set GRAPHC_WATCHDOG_ADDR to an "
                            "address of rank 0's machine that every rank reaches")
                time.sleep(0.05)
        sock.settimeout(None)
        sock.sendall(f"{self.rank:<15d}\n"[:16].encode())
        self._peers.append(_Peer(sock, 0))
        return None

    def _close_sockets(self) -> None:
        for peer in self._peers:
            peer.sock.close()
        self._peers.clear()

    # ---- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed and self.rank != 0:
                    return
                self._send_beats()
            self._receive(self.interval)
            problem = self._check()
            if problem:
                self._broadcast_stop()
                _stop(problem)

    def _send_beats(self):
        if self._closed:
            return
        for peer in self._peers:
            if not peer.done:
                try:
                    peer.sock.sendall(f"beat {self.step} {int(waiting())} {entered()}\n"
                                      .encode())
                except OSError:
                    pass  # noticed as a closed connection by _receive

    def _receive(self, wait):
        socks = {p.sock: p for p in self._peers if not p.done}
        if not socks:
            time.sleep(wait)
            return
        ready, _, _ = select.select(list(socks), [], [], wait)
        now = time.monotonic()
        for sock in ready:
            peer = socks[sock]
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                peer.done, peer.died = True, not peer.said_bye
                continue
            peer.buffer += data
            *lines, peer.buffer = peer.buffer.split(b"\n")
            for line in lines:
                kind, _, value = line.decode(errors="replace").partition(" ")
                if kind == "stop":
                    _stop(None)  # the hub has printed why
                if kind in ("beat", "bye"):
                    step, _, flag = value.partition(" ")
                    flag, _, count = flag.partition(" ")
                    step, waits = int(step), flag == "1"
                    count = int(count) if count else -1
                    if step != peer.step or _left_a_collective(peer, waits):
                        peer.step, peer.moved = step, now
                    if waits and (not peer.waiting or _another(peer.entered, count)):
                        peer.waits_since = now
                    peer.waiting, peer.entered = waits, count
                    peer.seen = now
                if kind == "bye":
                    peer.said_bye, peer.bye_at = True, now

    def _check(self) -> str | None:
        """One line naming the failed rank and its step, or None."""
        now = time.monotonic()
        own = self._own
        waits, count = waiting(), entered()
        if self.step != own.step or _left_a_collective(own, waits):
            own.step, own.moved = self.step, now
        if waits and (not own.waiting or _another(own.entered, count)):
            own.waits_since = now
        own.waiting, own.entered, own.said_bye = waits, count, self._closed
        everyone = [own] + [p for p in self._peers if self.rank == 0]
        n = self.size
        for peer in self._peers:
            if peer.died and not self._printer(peer):
                _stop(None)
            if peer.died:
                return f"rank {peer.rank} died at step {peer.step}; stopping all {n} ranks"
            if peer.said_bye:
                continue
            if now - peer.seen > self.timeout:
                if not self._printer(peer):
                    _stop(None)
                return (f"rank {peer.rank} stopped responding at step {peer.step} (no "
                        f"heartbeat for {self.timeout:g} s); stopping all {n} ranks")
        if self.rank != 0:
            return None
        live = [p for p in everyone if not p.said_bye]
        for peer in live:
            # before its first beat a rank is starting (compiling kernels, reading data),
            # which may take longer than a step: only death and silence count then
            if peer.step < 0 or peer.waiting or now - peer.moved <= self.timeout:
                continue
            blocked = [p for p in live if p is not peer and (p.step > peer.step or p.waiting)]
            if blocked:
                return (f"rank {peer.rank} made no progress for {self.timeout:g} s at step "
                        f"{peer.step} while rank {blocked[0].rank} waits for it at step "
                        f"{blocked[0].step}; stopping all {n} ranks")
        for peer in (p for p in self._peers if p.said_bye):
            stuck = [p for p in live if p.waiting and now - p.moved > self.timeout
                     and now - peer.bye_at > self.timeout]
            if stuck:
                return (f"rank {peer.rank} ended at step {peer.step} while rank "
                        f"{stuck[0].rank} waits at step {stuck[0].step}; stopping all "
                        f"{n} ranks")
        # every rank waiting inside a collective, each for longer than the timeout: none is
        # late for the others, so they wait in different ones (their programs took other
        # paths) and none returns. Each rank above is judged only outside a collective, so
        # this deadlock went unnoticed for ever
        if len(live) > 1 and all(p.waiting and now - p.waits_since > self.timeout
                                 for p in live):
            where = ", ".join(f"rank {p.rank} at step {p.step}"
                              for p in sorted(live, key=lambda p: p.rank))
            return (f"every rank has waited inside a collective for {self.timeout:g} s "
                    f"({where}): they are in different collectives, or in one slower than "
                    f"the timeout; stopping all {n} ranks")
        return None

    def _printer(self, failed) -> bool:
        """Whether this rank prints the line about `failed`: rank 0, or when rank 0 is the one
        that failed, the lowest other rank (so the job prints it once)."""
        return self.rank == 0 or (failed.rank == 0 and self.rank == 1)

    def _broadcast_stop(self):
        for peer in self._peers:
            if not peer.done:
                try:
                    peer.sock.sendall(b"stop\n")
                except OSError:
                    pass


def _another(before: int, now: int) -> bool:
    """Whether a rank that was seen waiting at its last beat, having then entered `before`
    collectives, waits in another one now that it has entered `now` (-1: not told)."""
    return before >= 0 and now != before


def _left_a_collective(peer: _Peer, waits: bool) -> bool:
    """Whether `peer`, which was waiting in a collective, no longer is: progress, as a new
    step is. Its step had not moved while it waited (for rank 0 writing a checkpoint, say),
    so in the moment between leaving and its next step's beat it looked stuck for as long
    as it had waited, and rank 0, on in that next step's all-reduce first, had it blamed:
    'rank 1 made no progress for 60 s at step 3 while rank 0 waits for it at step 4'."""
    return peer.waiting and not waits


def start(comm, address: str, timeout: float = DEFAULT_TIMEOUT_S) -> Watchdog:
    """A running watchdog for this rank of `comm` (collective: every rank must call it).
    When a rank cannot connect (an address the others cannot reach), every rank raises the
    same GraphcError, marked on_every_rank, naming the rank that could not (rather than rank
    0's 'only 1 of 2 ranks connected', which follows from it): a start-up failure the ranks
    agree on, so that `graphc train --ranks N` reports it in one line with status 2."""
    dog = Watchdog(comm.Get_rank(), comm.Get_size(), timeout)
    failure = dog.connect(comm, address)
    failures = _agree(comm, failure, dog.timeout)  # (a collective, like bcast in connect)
    if any(failures):
        dog._close_sockets()
        exc = GraphcError(next((f for f in failures[1:] if f), failures[0]))
        exc.on_every_rank = True
        raise exc
    threading.Thread(target=dog._run, name="graphc-watchdog", daemon=True).start()
    return dog


def _agree(comm, failure: str | None, timeout: float) -> list:
    """Every rank's connect() outcome, once every rank has one. Not a plain allgather: the
    watchdog is not running yet, so a rank that never gets here (stopped, or starting long
    after the others gave up on it) would leave the others waiting forever. A rank that is
    alive gets here within `timeout` of its own start (rank 0 gives up accepting after it, a
    rank that cannot connect gives up trying), so the others wait twice that, then leave as
    before the agreement, with this rank's line."""
    arrived = comm.Ibarrier()
    wait = 2 * timeout
    deadline = time.monotonic() + wait
    while not arrived.Test():
        if time.monotonic() > deadline:
            _stop(failure or f"watchdog: rank {comm.Get_rank()} waited {wait:g} s for every "
                  "rank to start its watchdog")
        time.sleep(0.002)
    return comm.allgather(failure)
