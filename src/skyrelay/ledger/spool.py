"""The spool: append-only files on local disk holding every ledger record from the moment it is written until the
database has committed it.

Each file (a segment) is preallocated, memory-mapped and faulted in ahead of use: an append is a copy into the mapping, no system call, so
the request path pays a fraction of a microsecond, and the bytes belong to the kernel's page cache the moment they
are copied, so a `kill -9` of the process loses none of them. A background thread fsyncs the segments every
`fsync_interval_ms` (a power loss loses at most the records of that interval). Lines are JSON arrays (see
record.py); a reader splits on newlines and skips the zero bytes of a segment's unwritten tail.

A process owns its segments through an exclusive lock on `<owner>.lock`, held while it lives: segments whose lock
can be taken belong to a process that died (or stopped before shipping everything), and the next one to start
adopts them (shipper.py). Appends happen on the event loop's thread only; the syncer and the shipper read.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import threading
import time
from typing import Callable

log = logging.getLogger("skyrelay.ledger")

SEGMENT_SUFFIX = ".spool"
LOCK_SUFFIX = ".lock"
_RETRY_AFTER_FAILURE = 1.0  # seconds between tries to open a segment after the disk refused one
_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux 5.14+
_WARM_CHUNK = 256 << 10  # bytes per madvise call (each holds the GIL for a fraction of a millisecond)
_WARM_AHEAD = 64 << 10  # at least this much faulted in ahead of the writer


class Segment:
    """One spool file. `end` is how far it is written: the appending thread moves it after each copy, so readers
    never see half a line below it. `sealed` once the next segment took over: `end` is final."""

    __slots__ = ("index", "path", "fd", "mm", "size", "end", "sealed", "synced", "warmed")

    def __init__(self, index: int, path: str, fd: int, mm: mmap.mmap, size: int, end: int):
        self.index = index
        self.path = path
        self.fd = fd
        self.mm = mm
        self.size = size
        self.end = end
        self.sealed = False
        self.synced = 0  # how far it is known durable (fsynced)
        self.warmed = 0  # how far its pages were faulted in ahead of the writer

    def read(self, start: int, stop: int) -> bytes:
        return self.mm[start:stop]

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)


class Spool:
    """This process's segments, the newest last (the live one). `header` is written at the start of each segment:
    what a reader needs to understand its lines."""

    def __init__(self, directory: str, segment_bytes: int, header: Callable[[str], bytes]):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._header = header(self.owner)
        self._lock_fd = take_lock(os.path.join(directory, self.owner + LOCK_SUFFIX))
        if self._lock_fd is None:  # a fresh random name: cannot be held by anyone else
            raise RuntimeError("cannot lock a new spool owner file")
        self.segments: list[Segment] = []
        self.lost = 0  # records that could not be spooled (the disk refused a new segment)
        self._next_index = 0
        self._failed_at = -_RETRY_AFTER_FAILURE
        self._new_files = True  # the directory's entries need an fsync too
        self._sync_lock = threading.Lock()  # between the syncer's fsyncs and the shipper's deletions
        self._create_lock = threading.Lock()  # between the loop's rotation and the syncer's spare
        self._spare: Segment | None = None
        self._end_at_last_tick = 0
        self._live: Segment | None = self._new_segment()
        if self._live is None:
            raise OSError("cannot create the first spool segment in " + directory)
        warm(self._live, 0, _WARM_AHEAD)
        self.segments.append(self._live)

    # --- the request path (event loop thread) -------------------------------------------------------------------

    def append(self, data: bytes) -> None:
        """Copy whole lines into the live segment (a new one when they do not fit)."""
        seg = self._live
        if seg is None or seg.end + len(data) > seg.size:
            seg = self._rotate(len(data))
            if seg is None:
                self.lost += 1
                return
        start = seg.end
        end = start + len(data)
        seg.mm[start:end] = data
        seg.end = end

    def _rotate(self, needed: int) -> Segment | None:
        now = time.monotonic()
        if self._live is None and now - self._failed_at < _RETRY_AFTER_FAILURE:
            return None
        if needed + len(self._header) > self.segment_bytes:
            log.error("a ledger record of %d bytes does not fit in a spool segment; dropped", needed)
            return None
        with self._create_lock:  # the syncer's spare, made ahead; made here only when it is not ready
            fresh, self._spare = self._spare, None
            if fresh is None:
                fresh = self._new_segment()
        if self._live is not None:
            self._live.sealed = True
        self._live = fresh
        if fresh is None:
            self._failed_at = now
        else:
            self.segments.append(fresh)
        return fresh

    def prepare(self) -> None:
        """The syncer's work ahead of the writer, each tick: fault in the pages the next ticks will write (twice
        what the last one wrote), and once the live segment is half full, make the next one, so that neither a
        first touch nor a rotation costs the loop anything."""
        live = self._live
        if live is None:
            return
        end = live.end
        ahead = max(_WARM_AHEAD, 2 * (end - self._end_at_last_tick)) if end >= self._end_at_last_tick else _WARM_AHEAD
        self._end_at_last_tick = end
        if end + ahead > live.warmed:
            warm(live, max(end, live.warmed), end + ahead)
        if self._spare is None and end > live.size // 2:
            with self._create_lock:
                if self._spare is None:
                    spare = self._new_segment()
                    if spare is not None:
                        warm(spare, 0, _WARM_AHEAD)
                    self._spare = spare

    def _new_segment(self) -> Segment | None:
        """A segment whose blocks are allocated up front (so an append never meets a full disk as SIGBUS)."""
        index = self._next_index
        path = os.path.join(self.directory, f"{self.owner}.{index:08d}{SEGMENT_SUFFIX}")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            log.error("cannot create a ledger spool segment: %s", exc.strerror)
            return None
        try:
            os.posix_fallocate(fd, 0, self.segment_bytes)
            mm = mmap.mmap(fd, self.segment_bytes)
        except OSError as exc:
            log.error("cannot allocate a ledger spool segment of %d bytes: %s", self.segment_bytes, exc.strerror)
            os.close(fd)
            os.unlink(path)
            return None
        header = self._header
        mm[:len(header)] = header
        self._next_index = index + 1
        self._new_files = True
        return Segment(index, path, fd, mm, self.segment_bytes, len(header))

    # --- background threads -------------------------------------------------------------------------------------

    def sync(self) -> None:
        """Make every written byte durable (the syncer thread, every fsync_interval_ms; and at close)."""
        with self._sync_lock:
            if self._new_files:
                self._new_files = False
                fsync_directory(self.directory)
            for seg in list(self.segments):
                end = seg.end
                if seg.synced < end:
                    try:
                        os.fsync(seg.fd)
                    except OSError as exc:
                        log.error("cannot fsync the ledger spool: %s", exc.strerror)
                        return
                    seg.synced = end

    def release(self, seg: Segment) -> None:
        """Delete a sealed segment whose every record the database has committed (the shipper thread)."""
        with self._sync_lock:
            self.segments.remove(seg)
            seg.close()
            os.unlink(seg.path)

    def bytes_on_disk(self) -> int:
        return sum(seg.size for seg in list(self.segments))

    def close(self, *, shipped: bool) -> None:
        """Sync and close. When everything was shipped the files go; otherwise they stay, and the next process to
        start in this directory adopts them."""
        self.sync()
        with self._sync_lock:
            spare, self._spare = self._spare, None
            if spare is not None:  # never used: nothing in it but its header
                spare.close()
                os.unlink(spare.path)
            for seg in self.segments:
                seg.close()
                if shipped:
                    os.unlink(seg.path)
            self.segments.clear()
            self._live = None
            if shipped:
                os.unlink(os.path.join(self.directory, self.owner + LOCK_SUFFIX))
            os.close(self._lock_fd)


def warm(seg: Segment, start: int, stop: int) -> None:
    """Fault a segment's pages in, writable, before the loop writes them: a first write to a page of a fresh
    file otherwise costs the appending thread a page fault into the file system (the bulk of an append's cost).
    The contents are untouched. Not available (an older kernel): appends fault as they go."""
    start -= start % mmap.PAGESIZE
    stop = min(stop, seg.size)
    try:
        for at in range(start, stop, _WARM_CHUNK):
            seg.mm.madvise(_POPULATE_WRITE, at, min(_WARM_CHUNK, stop - at))
    except (OSError, ValueError, AttributeError):
        pass
    seg.warmed = max(seg.warmed, stop)


def take_lock(path: str) -> int | None:
    """An open descriptor holding the exclusive lock on `path` (created when missing), or None when another
    process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Orphan:
    """The segments a dead process left, locked by us while we ship them."""

    def __init__(self, directory: str, owner: str, lock_fd: int, paths: list[str]):
        self.directory = directory
        self.owner = owner
        self.lock_fd = lock_fd
        self.paths = paths

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def finish(self, *, shipped: bool) -> None:
        """Delete the files once their records are committed; let go of them otherwise."""
        if shipped:
            for path in self.paths:
                os.unlink(path)
            fsync_directory(self.directory)
            os.unlink(os.path.join(self.directory, self.owner + LOCK_SUFFIX))
        os.close(self.lock_fd)


def orphans(directory: str, alive: str) -> list[Orphan]:
    """The segments of every owner but `alive` whose lock nobody holds: its process is gone."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    owners: dict[str, list[str]] = {}
    for name in names:
        if name.endswith(SEGMENT_SUFFIX):
            owners.setdefault(name.split(".", 1)[0], []).append(name)
        elif name.endswith(LOCK_SUFFIX):
            owners.setdefault(name[:-len(LOCK_SUFFIX)], [])
    found = []
    for owner, segment_names in sorted(owners.items()):
        if owner == alive:
            continue
        lock_fd = take_lock(os.path.join(directory, owner + LOCK_SUFFIX))
        if lock_fd is None:
            continue  # alive (or being adopted by another process right now)
        # Listed again under the lock: another process may have finished adopting them in between.
        present = sorted(name for name in os.listdir(directory)
                         if name.startswith(owner + ".") and name.endswith(SEGMENT_SUFFIX))
        found.append(Orphan(directory, owner, lock_fd, [os.path.join(directory, n) for n in present]))
    return found
