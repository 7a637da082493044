"""Terminal UI update cost with 500 runs (``--runs``) in the store and a live writer, and what the
app costs a terminal at 80x24: first paint, idle output and CPU, typing a filter.

A store gets 500 runs (300 finished with metrics and spectra, 16 running, the rest queued); a
separate process then writes like a busy scheduler - 1,000 metric rows a second in batches of 100,
an epoch end (progress + eval metrics + a spectral measurement) on a running run every 0.1 s - while
the app runs headless for a while on the dashboard and then on a running run's detail screen.

Printed, per refresh: the store read (poller thread) and the screen update (UI thread), median
and p95 in milliseconds; the UI event loop's lag (how late a 50 ms timer fires: what a key press
would wait); the app process's memory. The baseline is a bare ``Store.runs()`` on the same store
in the same process: the least any refresh must read.

Then, before the writer starts, the app runs for real in a pseudo-terminal of 80x24 (a child
process, as over SSH): the seconds to its first picture of the table, the bytes it writes to the
terminal and the share of a core it uses while nothing changes, and, typing an 18-character filter
a key every 0.15 s, how long each key waits for its echo and how long the filtered table takes.

    .venv/bin/python benchmarks/tui_bench.py [--seconds 10] [--runs 500] [--rows-per-s 1000]
        [--idle-seconds 10] [--no-terminal]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import math
import multiprocessing as mp
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import numpy as np

from rankbias_tui.spec import parse_spec
from rankbias_tui.store import SpectrumRow, Store
from rankbias_tui.sweep import expand

LAYERS = [("fc1", 100, 64), ("fc2", 100, 100), ("fc3", 100, 100), ("fc4", 100, 100)]
RUNNING = 16


def build(directory: Path, n_runs: int) -> list[str]:
    """Register ``n_runs`` runs; fill 60% as finished, 16 as running; return the running ids."""
    grid = {
        "batch_size": [4, 8, 16, 32, 64],
        "lr": [0.01, 0.05, 0.1, 0.5, 1.0],
        "weight_decay": [0, 1e-4, 1e-3, 5e-3],
    }
    seeds = list(range(math.ceil(n_runs / 100)))
    spec = parse_spec(
        {"defaults": {"model": "mlp-bn", "depth": 4, "width": 100, "dataset": "digits", "epochs": 40},
         "sweeps": {"bench": {"grid": grid, "seeds": seeds}}},
        directory / "spec.toml",
    )  # fmt: skip
    planned = expand(spec, ["bench"])[:n_runs]
    store = Store(directory)
    store.add_runs(planned, {})
    finished = int(0.6 * n_runs)
    running: list[str] = []
    with store.transaction():
        for i, run in enumerate(planned[: finished + RUNNING]):
            store.start_attempt(run.run_id, "cpu", 1)
            epochs = 40 if i < finished else 10
            for epoch in range(epochs + 1):
                _epoch_end(store, run.run_id, epoch, epoch * 100, with_spectra=epoch % 10 == 0)
            if i < finished:
                store.set_status(run.run_id, "done")
            else:
                running.append(run.run_id)
    store.close()
    return running


def _epoch_end(store: Store, run_id: str, epoch: int, step: int, with_spectra: bool) -> None:
    loss = 2.3 * math.exp(-epoch / 10)
    metrics = {"train_loss": loss, "train_acc": 1 - loss / 3, "test_loss": loss, "test_acc": 0.9 - loss / 3}
    store.add_metrics(run_id, [(step, float(epoch), k, v) for k, v in metrics.items()])
    if with_spectra:
        s = np.exp(-0.05 * np.arange(64))
        store.add_spectra(
            SpectrumRow(run_id, step, float(epoch), i, name, d_out, d_in, 1, s / np.linalg.norm(s), 60, 1e-3,
                        1.5, 40.0, 3.0, 1.0, 1e5)
            for i, (name, d_out, d_in) in enumerate(LAYERS)
        )  # fmt: skip
    store.set_progress(run_id, step, float(epoch), 4000)


def writer(directory: str, running: list[str], rows_per_s: int, stop: mp.Event, written: mp.Value) -> None:  # type: ignore[valid-type]
    """Write like a scheduler: metric rows in batches of 100, an epoch end every 0.1 s."""
    store = Store(directory)
    batch, tick = 100, 100 / rows_per_s
    step = {run_id: 1000 for run_id in running}
    epoch = dict.fromkeys(running, 10)
    turn = 0
    next_at = time.monotonic()
    while not stop.is_set():
        run_id = running[turn % len(running)]
        with store.transaction():
            for _ in range(batch // 2):
                step[run_id] += 1
                store.add_metrics(
                    run_id,
                    [(step[run_id], epoch[run_id], "loss", 1.0), (step[run_id], epoch[run_id], "acc", 0.5)],
                )
            epoch[run_id] += 1
            _epoch_end(store, run_id, epoch[run_id], step[run_id], with_spectra=epoch[run_id] % 5 == 0)
        written.value += batch
        turn += 1
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    store.close()


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def baseline_ms(directory: Path, repeats: int = 30) -> float:
    with Store(directory) as store:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            store.runs()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def drive(directory: Path, seconds: float, detail_id: str) -> tuple[object, dict[str, list[float]]]:
    from rankbias_tui.tui import create_app
    from rankbias_tui.tui.messages import OpenRun

    app = create_app(directory, spawn=None)  # polls every 0.5 s, as in use
    lags: dict[str, list[float]] = {"dashboard": [], "run detail": []}
    phase = "warm-up"
    async with app.run_test(size=(120, 40)) as pilot:
        last = time.monotonic()

        def tick() -> None:
            nonlocal last
            now = time.monotonic()
            lags.setdefault(phase, []).append(max(0.0, (now - last - 0.05) * 1000))
            last = now

        app.set_interval(0.05, tick)
        await pilot.pause(1.0)  # the first picture: the rows added once
        filled = 1.0
        while (app.latest is None or app.latest.snapshot.total is not None) and filled < 120:  # the rest
            await pilot.pause(0.1)
            filled += 0.1
        print(f"every run with its values read {filled:.1f} s after the start")
        app.poll_ms.clear(), app.apply_ms.clear()  # the steady state from here
        phase = "dashboard"
        await pilot.pause(seconds / 2)
        app.bench_dashboard = len(app.poll_ms)  # type: ignore[attr-defined] - the refreshes of the dashboard
        phase = "warm-up"
        app.post_message(OpenRun(detail_id))
        await pilot.pause(1.0)
        phase = "run detail"
        await pilot.pause(seconds / 2)
    return app, lags


class Terminal:
    """The app in a pseudo-terminal of ``size``: every byte it writes, with the time it came."""

    APP = "import sys; from rankbias_tui.tui import create_app; create_app(sys.argv[1], spawn=None).run()"

    def __init__(self, directory: Path, size: tuple[int, int] = (80, 24)):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(size[0]), "LINES": str(size[1])}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.APP, str(directory)],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.chunks: list[tuple[float, bytes]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.chunks.append((time.monotonic(), data))

    def wait_for(self, text: bytes, timeout: float = 120.0) -> float:
        """Seconds from the start until ``text`` was written (inf if it never was)."""
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, data in list(self.chunks):
                seen += data  # cut only after looking: a first picture comes in one big write
                if text in seen:
                    return at - self.started
                seen = seen[-len(text) :]
            seen = b""
            time.sleep(0.05)
        return math.inf

    def cpu_s(self) -> float:
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def bytes_between(self, start: float, end: float) -> int:
        return sum(len(d) for at, d in list(self.chunks) if start <= at < end)

    def key_echo_ms(self, key: bytes, timeout: float = 5.0) -> float:
        """Write ``key``; milliseconds until the app writes anything back."""
        count = len(self.chunks)
        sent = time.monotonic()
        os.write(self.master, key)
        while len(self.chunks) == count and time.monotonic() - sent < timeout:
            time.sleep(0.001)
        return (self.chunks[count][0] - sent) * 1000 if len(self.chunks) > count else math.inf

    def quiet_after(self, since: float, quiet_s: float = 0.6, timeout: float = 30.0) -> float:
        """Seconds from ``since`` until the last write before ``quiet_s`` of silence."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            last = self.chunks[-1][0] if self.chunks else since
            if time.monotonic() - last >= quiet_s:
                return max(0.0, last - since)
            time.sleep(0.05)
        return math.inf

    def close(self) -> None:
        os.write(self.master, b"q")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


def terminal_figures(directory: Path, idle_s: float, runs: int) -> list[str]:
    """First paint, idle output and CPU, and typing a filter, at 80x24 in a pseudo-terminal."""
    term = Terminal(directory)
    try:
        first = term.wait_for(b"running")  # the header's counts: the store was read, the runs are shown
        time.sleep(3.0 + runs / 1000 * 0.7)  # settle: a big store's metrics fill in (1,000 a refresh)
        cpu0, t0 = term.cpu_s(), time.monotonic()
        time.sleep(idle_s)
        cpu1, t1 = term.cpu_s(), time.monotonic()
        idle_bytes = term.bytes_between(t0, t1)
        term.key_echo_ms(b"/")
        time.sleep(0.3)
        echoes = []
        for char in "sweep=bench lr=0.1":  # 18 characters, a key every 0.15 s
            echoes.append(term.key_echo_ms(char.encode()))
            time.sleep(max(0.0, 0.15 - echoes[-1] / 1000))
        typed = time.monotonic()
        term.key_echo_ms(b"\r")  # Enter: back to the table (a focused input's cursor blinks)
        settled = term.quiet_after(typed)
    finally:
        term.close()
    median, _ = quantiles(echoes)
    return [
        f"first paint at 80x24             {first:7.2f} s",
        f"idle: terminal output            {idle_bytes / (t1 - t0):7.0f} bytes/s over {t1 - t0:.0f} s",
        f"idle: app CPU                    {100 * (cpu1 - cpu0) / (t1 - t0):7.1f} % of a core",
        f"filter typing: key echo          median {median:7.1f} ms   max {max(echoes):7.1f} ms",
        f"filter typing: table settled     {settled * 1000:7.0f} ms after the last key (then Enter)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--rows-per-s", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--no-terminal", action="store_true", help="skip the pseudo-terminal figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        running = build(directory, args.runs)
        print(
            f"store: {args.runs} runs ({len(running)} running) built in {time.perf_counter() - started:.1f} s"
        )
        base = baseline_ms(directory)
        terminal = [] if args.no_terminal else terminal_figures(directory, args.idle_seconds, args.runs)
        ctx = mp.get_context("spawn")
        stop, written = ctx.Event(), ctx.Value("q", 0)
        proc = ctx.Process(target=writer, args=(str(directory), running, args.rows_per_s, stop, written))
        proc.start()
        begun = time.monotonic()
        try:
            app, lags = asyncio.run(drive(directory, args.seconds, running[0]))
        finally:
            stop.set()
            proc.join(10)
        rate = written.value / (time.monotonic() - begun)
    poll, apply = app.poll_ms, app.apply_ms  # type: ignore[attr-defined]
    total = [p + a for p, a in zip(poll, apply, strict=True)]
    print(f"live writer: {rate:.0f} metric rows/s; {len(total)} refreshes in {args.seconds + 2:g} s")
    cut = app.bench_dashboard  # type: ignore[attr-defined]
    rows = [
        ("store read (poller thread)", poll),
        ("screen update (UI thread)", apply),
        ("refresh total", total),
        ("refresh total, dashboard", total[:cut]),
        ("refresh total, run detail", total[cut:] or [0.0]),
    ]
    rows += [(f"UI loop lag, {phase}", values) for phase, values in lags.items() if phase != "warm-up"]
    for name, values in rows:
        median, p95 = quantiles(values)
        print(f"{name:<30} median {median:7.2f} ms   p95 {p95:7.2f} ms")
    median, _ = quantiles(poll)
    print(
        f"baseline Store.runs()          median {base:7.2f} ms   store read / baseline = {median / base:.2f}x"
    )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    current = (
        next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
    )
    print(f"app process memory: peak RSS {rss_mb:.0f} MiB, now {current:.0f} MiB")
    for text in terminal:
        print(text)


if __name__ == "__main__":
    main()
