"""Encoding follows demand: followers and HLS requests are counted; a worker's gate encodes a camera's
frames for streaming only while it is followed, a snapshot about once a second otherwise."""

from __future__ import annotations

import numpy as np

from orchestrator.dataplane.live.outputs import CameraOutputs, Demand, DemandGate


def test_followers_and_hls_requests_make_demand() -> None:
    outputs = CameraOutputs()
    outputs.register("door")
    assert outputs.demand() == Demand(frozenset(), frozenset())
    outputs.publish("door", np.zeros((8, 8, 3), np.uint8), 0.0)
    follower = outputs.follow("door", wait_s=0.01)
    assert next(follower) is not None
    assert outputs.demand().streaming == {"door"}
    follower.close()  # the client went away
    assert outputs.demand().streaming == frozenset()
    outputs.hls_requested("door")
    assert outputs.demand().hls == {"door"}


def test_the_gate_encodes_streamed_cameras_and_refreshes_snapshots() -> None:
    now = [0.0]
    gate = DemandGate(clock=lambda: now[0])
    assert gate.wants_jpeg("door"), "the first frame makes the first snapshot"
    now[0] = 0.5
    assert not gate.wants_jpeg("door")
    now[0] = 1.0
    assert gate.wants_jpeg("door"), "a snapshot a second later"
    gate.demand = Demand(frozenset({"door"}), frozenset())
    now[0] = 1.04
    assert gate.wants_jpeg("door") and gate.wants_jpeg("door"), "every frame while followed"
    assert not gate.wants_hls("door")
    gate.demand = Demand(frozenset(), frozenset({"door"}))
    assert gate.wants_hls("door")
