"""Container log lines appended to files, off the hot path: buffered, flushed in batches.

The log pumps (one thread per container) hand over a line per line the container writes;
a reference image writes one per request. A line-buffered file costs a ``write`` syscall per
line under a lock the other pumps wait on; :class:`LogFiles` instead appends to the file's
buffer and lets one flusher thread write out everything pending :data:`FLUSH_AFTER_S` after
the first unflushed line (or at :meth:`LogFiles.close`). Readers of the files (``serve``,
``smlocal logs --follow``) so see a line at most that much later, in one batch, and a busy
endpoint costs a syscall per batch rather than per line. A SIGKILL of the service may lose
the last :data:`FLUSH_AFTER_S` of output; everything else is written, in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import IO, Generic, TypeVar

__all__ = ["FLUSH_AFTER_S", "PACE_S", "LogFiles", "paced"]

log = logging.getLogger(__name__)

#: How long a line may wait in the buffer: short beside a reader's 0.1 s poll.
FLUSH_AFTER_S = 0.05

K = TypeVar("K", bound=Hashable)


class LogFiles(Generic[K]):
    """Text files by key, opened on first use by ``open_file(key)``, appended to in batches.

    Thread-safe. After :meth:`close` the next :meth:`append` reopens its file (a late line
    from a pump still reaches it)."""

    def __init__(
        self, open_file: Callable[[K], IO[str]], *, flush_after_s: float = FLUSH_AFTER_S
    ) -> None:
        self._open = open_file
        self._flush_after_s = flush_after_s
        self._files: dict[K, IO[str]] = {}
        self._lock = threading.Condition(threading.Lock())
        self._dirty = False  # something is in a buffer, not yet in its file
        self._flusher: threading.Thread | None = None

    def append(self, key: K, text: str) -> None:
        """Add ``text`` (whole lines, newline included) to ``key``'s file."""
        with self._lock:
            handle = self._files.get(key)
            if handle is None:
                handle = self._files[key] = self._open(key)
            handle.write(text)
            if not self._dirty:  # the first line of a batch: wake (or start) the flusher
                self._dirty = True
                if self._flusher is None:
                    self._flusher = threading.Thread(
                        target=self._flush_batches, name="log-files-flush", daemon=True
                    )
                    self._flusher.start()
                else:
                    self._lock.notify()

    def flush(self) -> None:
        """Write out every buffered line now."""
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Flush and close every file; the flusher thread ends."""
        with self._lock:
            self._flush_locked()
            for handle in self._files.values():
                handle.close()
            self._files.clear()
            self._flusher = None
            self._lock.notify()

    def _flush_locked(self) -> None:
        self._dirty = False
        for handle in self._files.values():
            try:
                handle.flush()
            except OSError as error:  # a full disk: the lines are lost, the pumps go on
                log.warning("cannot write a container log: %s", error)

    def _flush_batches(self) -> None:
        # One thread for all the files, blocked while nothing is pending; it waits a moment
        # after a batch's first line so the lines behind it go out in the same write.
        me = threading.current_thread()
        while True:
            with self._lock:
                while not self._dirty and self._flusher is me:
                    self._lock.wait()
                if self._flusher is not me:  # closed (a later append starts a new one)
                    return
            time.sleep(self._flush_after_s)
            self.flush()


#: A read of a container's log stream that took longer than this waited for the container.
_WAITED_S = 0.0005
#: After such a read, let this much output gather before reading on.
PACE_S = 0.05


def paced(stream: Iterator[bytes], *, pause_s: float = PACE_S) -> Iterator[bytes]:
    """``stream``'s chunks, read so that a steady trickle (a line per request) costs a
    wake-up per ``pause_s``, not one per line.

    Each time a read had to wait for the container, the next read waits ``pause_s`` first:
    what the container writes meanwhile queues in the socket, and the reads after the pause
    take it from there without blocking (a wake-up of the reading thread cost ~30 µs here,
    more than parsing the line). A burst is read at full speed; no line waits more than
    ``pause_s`` for the one read after it."""
    while True:
        started = time.monotonic()
        chunk = next(stream, None)
        if chunk is None:
            return
        waited = time.monotonic() - started > _WAITED_S
        yield chunk
        if waited:
            time.sleep(pause_s)
