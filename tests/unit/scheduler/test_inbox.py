"""Reading a worker's pipe (scheduler.inbox): whole messages in order, never a wait on a partial one."""

from __future__ import annotations

import os
import pickle
import struct
import time
from multiprocessing import Pipe

import numpy as np

from rankbias_tui.protocol import Heartbeat, Metrics, Progress
from rankbias_tui.scheduler.inbox import Inbox


def test_messages_come_whole_and_in_order_small_and_large() -> None:
    reader, writer = Pipe(duplex=False)
    inbox = Inbox(reader)
    big = Metrics("r", 1, 0.0, {f"m{i}": float(i) for i in range(3000)})  # sent in two writes (> 16 KiB)
    sent = [Heartbeat(), Progress("r", 10, 1.0), big, Progress("r", 20, 2.0)]
    for message in sent:
        writer.send(message)
    assert list(inbox.messages()) == sent
    assert list(inbox.messages()) == [] and not inbox.closed
    writer.close()
    assert list(inbox.messages()) == [] and inbox.closed


def test_a_message_cut_short_is_kept_until_the_rest_comes_without_waiting() -> None:
    """A worker frozen half-way through a message must not hold the scheduler in ``recv``."""
    reader, writer = Pipe(duplex=False)
    inbox = Inbox(reader)
    payload = pickle.dumps(
        Metrics("r", 5, 0.5, {"svals": float(np.pi)} | {f"k{i}": 1.0 for i in range(9000)})
    )
    frame = struct.pack("!i", len(payload)) + payload
    writer.send(Heartbeat())
    os.write(writer.fileno(), frame[:1000])  # the header and a part: the writer stops here
    started = time.monotonic()
    assert list(inbox.messages()) == [Heartbeat()]
    assert list(inbox.messages()) == []
    assert time.monotonic() - started < 5  # it returned (Connection.recv would still be waiting)
    rest = frame[1000:]
    while rest:  # the pipe holds 64 KiB: read between writes, as the loop would
        written = os.write(writer.fileno(), rest[:4096])
        rest = rest[written:]
        assert list(inbox.messages()) in ([], [pickle.loads(payload)])
    writer.send(Progress("r", 6, 0.6))
    assert list(inbox.messages())[-1] == Progress("r", 6, 0.6)


def test_the_header_of_a_message_over_two_gib_is_read() -> None:
    """-1, then an 8-byte length: ``Connection``'s framing for the largest messages (not sent here)."""
    reader, writer = Pipe(duplex=False)
    inbox = Inbox(reader)
    payload = pickle.dumps(Progress("r", 1, 0.0))
    os.write(writer.fileno(), struct.pack("!i", -1) + struct.pack("!Q", len(payload)) + payload)
    assert list(inbox.messages()) == [Progress("r", 1, 0.0)]
