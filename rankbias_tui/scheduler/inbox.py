"""Reading a worker's pipe without ever waiting on it: whole messages only, the rest kept for later.

``Connection.recv`` reads one message to its end, blocking until its last byte arrives. A worker
frozen (SIGSTOP, a hung driver, a machine swapping) in the middle of sending a large message - a
pack's spectra are tens of kilobytes, written in more than one piece - would hold the scheduler's
loop inside ``recv`` for ever: no cancel answered, no stop obeyed, no other worker heard. An
``Inbox`` reads whatever bytes the pipe holds now (the descriptor made non-blocking), cuts them
into messages with ``multiprocessing.connection``'s framing (a 4-byte big-endian length, or -1 and
an 8-byte length for a message over 2 GiB; Python's own ``Connection._send_bytes``), and keeps a
partial message until the rest comes.

Owns only that. Does not own what the messages mean (``scheduler.service`` dispatches them) nor
the pipe's other end (``engine.worker``, or a remote backend's relay).
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterator
from typing import Any

CHUNK = 1 << 16


class Inbox:
    """The messages waiting on ``conn`` (a ``multiprocessing`` connection's read end)."""

    def __init__(self, conn: Any):
        self.fd: int = conn.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()
        self.closed = False  # the writer is gone (end of file)

    def messages(self) -> Iterator[Any]:
        """Every whole message that has arrived, in order; never blocks."""
        self._fill()
        start = 0
        try:
            while (frame := _frame(self.buffer, start)) is not None:
                begin, end = frame
                start = end
                yield pickle.loads(self.buffer[begin:end])
        finally:
            del self.buffer[:start]

    def _fill(self) -> None:
        while not self.closed:
            try:
                data = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:  # closed under us: nothing more will come
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            self.buffer += data


def _frame(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """(first byte, end) of the message at ``start`` of ``buffer`` if it is all there, else None."""
    if len(buffer) - start < 4:
        return None
    (size,) = struct.unpack_from("!i", buffer, start)
    head = start + 4
    if size == -1:
        if len(buffer) - head < 8:
            return None
        (size,) = struct.unpack_from("!Q", buffer, head)
        head += 8
    end = head + size
    return (head, end) if len(buffer) >= end else None
