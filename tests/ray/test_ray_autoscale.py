"""Issue 22, 1: rankbias asks Ray's autoscaler for room for the work it has queued (bounded), so a
cluster that autoscales grows; the request is withdrawn when nothing is left."""

from __future__ import annotations

import json

from rankbias_tui.scheduler.ray_backend import RayLauncher
from rankbias_tui.scheduler.ray_plan import Resources


def _requested() -> list[dict[str, float]]:
    """The standing request the autoscaler reads (Ray's autoscaler v1 keeps it in the GCS)."""
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return json.loads(raw) if raw else []


def test_the_autoscaler_is_asked_for_room_for_the_tasks_queued(ray_cluster) -> None:
    from ray.autoscaler.v2.utils import is_autoscaler_v2

    assert not is_autoscaler_v2()  # the request is read back where v1 keeps it
    launcher = RayLauncher(Resources(1.0, 0.25))
    launcher.want(3)
    assert _requested() == [{"CPU": 1.0, "GPU": 0.25}] * 3
    launcher.want(0)
    assert _requested() == []
