"""Triton python backend entry point; the model lives in orchestrator.inference.triton_python."""

from orchestrator.inference.triton_python import Postprocess as TritonPythonModel

__all__ = ["TritonPythonModel"]
