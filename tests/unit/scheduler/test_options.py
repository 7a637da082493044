"""SchedulerOptions: the one options object, and its round trip through a background scheduler's argv."""

from __future__ import annotations

import argparse
from pathlib import Path

from rankbias_tui.scheduler import SchedulerOptions
from rankbias_tui.scheduler.options import add_arguments


def parse(argv: list[str]) -> SchedulerOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return SchedulerOptions.parse(parser.parse_args(argv))


def test_argv_writes_what_was_set() -> None:
    options = SchedulerOptions("cpu", 2, Path("/data"), True, pack_size=1, graphs=False, idle_exit_s=30.0)
    assert options.argv() == [
        "--devices", "cpu", "--idle-exit", "30.0", "--per-device", "2", "--pack-size", "1", "--no-graphs",
        "--data-dir", "/data", "--keep-checkpoints",
    ]  # fmt: skip


def test_parse_reads_back_what_argv_wrote() -> None:
    for options in (
        SchedulerOptions(),
        SchedulerOptions("cuda:0,1", 3, Path("/data"), True, 4, False, 0.0),
        SchedulerOptions("cuda", backend="ray", ray_address="ray://head:10001"),
        SchedulerOptions(backend="ray"),
        SchedulerOptions(stall_s=2.5),
        SchedulerOptions(stall_s=0),
        SchedulerOptions(backend="ray", checkpoint_dir="s3://bucket/sweep"),
    ):
        assert parse(options.argv()) == options
