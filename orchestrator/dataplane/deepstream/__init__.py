"""The DeepStream engine (GPU fleets): pipeline, probes, configs; GStreamer and pyds are imported on use."""
