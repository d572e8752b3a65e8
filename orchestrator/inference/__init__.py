"""Detector backends and the model repository they read."""
