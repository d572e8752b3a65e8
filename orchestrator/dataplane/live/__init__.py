"""The live data plane: camera sources, batching across streams, outputs (issue 3, in progress)."""
