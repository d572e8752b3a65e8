"""Prometheus metrics, read from the workers' latest status at scrape time (one registry per app)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..services.streams import StreamMonitor

STATES = ("starting", "live", "reconnecting", "failed", "stopped")


class DataPlaneCollector(Collector):
    def __init__(self, monitor: StreamMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        status = self.monitor.all_status()
        streams = GaugeMetricFamily("cityveil_streams", "Camera streams by state", labels=["state"])
        for state in STATES:
            streams.add_metric([state], sum(1 for s in status.values() if s.get("state") == state))
        yield streams
        counters = {
            "frames_in": "Frames decoded from the source",
            "frames_out": "Masked frames published",
            "frames_dropped": "Frames dropped under overload (never published)",
            "frames_failed": "Frames that failed closed (fully masked or dropped)",
        }
        for name, help_text in counters.items():
            family = CounterMetricFamily(f"cityveil_{name}", help_text, labels=["camera"])
            for camera, s in status.items():
                family.add_metric([camera], s.get(name, 0))
            yield family
        for name in ("detections", "masks"):
            family = CounterMetricFamily(
                f"cityveil_{name}", f"{name.capitalize()} per class", labels=["camera", "cls"]
            )
            for camera, s in status.items():
                for cls, count in s.get(name, {}).items():
                    family.add_metric([camera, cls], count)
            yield family
        latency = GaugeMetricFamily(
            "cityveil_latency_p95_seconds", "Decode to publish latency, 95th percentile", labels=["camera"]
        )
        for camera, s in status.items():
            if s.get("latency_p95_s") is not None:
                latency.add_metric([camera], s["latency_p95_s"])
        yield latency
        cadence = GaugeMetricFamily(
            "cityveil_detect_interval",
            "Frames between detections (load shedding raises it)",
            labels=["camera"],
        )
        for camera, s in status.items():
            if s.get("detect_interval") is not None:
                cadence.add_metric([camera], s["detect_interval"])
        yield cadence
        models = GaugeMetricFamily(
            "cityveil_model_info", "Model version serving each camera", labels=["camera", "model"]
        )
        for camera, s in status.items():
            for cls, label in s.get("models", {}).items():
                models.add_metric([camera, f"{cls}={label}"], 1)
        yield models


def metrics_registry(monitor: StreamMonitor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DataPlaneCollector(monitor))
    return registry
