"""The python-backend models of the `cityveil_detect` ensemble (each version folder's model.py imports one).

They run inside Triton's python stub, in the Triton environment, and reuse the embedded backend's code:
the detectors' `prepare` (resize, normalise) and `decode` (peaks or regions, NMS) and the same ONNX Runtime
loading, so both backends find the same objects on the same frames. Frames that arrive in GPU memory are
resized on the GPU instead (`preprocess.device_input`) and normalised by the same per-family function.

Tensors between the steps, per class of `MODELS` (FACE, PLATE): `<CLASS>_IMAGE` (the network input) and
`<CLASS>_<output>` (the detector's outputs), plus PARAMS [B, 3 per class] = input scale x, y and the
threshold; an input scale of 0 means the class was not asked for.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from ..core.detections import Detections
from ..core.policy import LOWEST_THRESHOLD
from ..core.xp import array_module
from .detectors import MODELS
from .ensemble_contract import DEFAULT_SCALE, to_rows
from .onnx_backend import LoadedModel, RuntimeOptions, load_model
from .preprocess import NETWORK_STRIDE, device_input
from .repository import ModelRepository

# A request without a threshold (nvinferserver sends none) gets every object any camera's plan could
# accept; the DeepStream probe then thresholds each frame by its camera's plan.
DEFAULT_THRESHOLD = LOWEST_THRESHOLD


def _optional(request: Any, name: str, default: float) -> float:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else float(tensor.as_numpy().reshape(-1)[0])


def _parameter(args: dict[str, str], key: str, default: str) -> str:
    parameters = json.loads(args["model_config"]).get("parameters", {})
    return str(parameters.get(key, {}).get("string_value", default))


def _frames(images: Any) -> Any:
    """The IMAGES batch where it lies: a NumPy array, or a CuPy array over Triton's GPU buffer."""
    if images.is_cpu():
        return images.as_numpy()
    import cupy  # only GPU hosts let frames through in GPU memory (FORCE_CPU_ONLY_INPUT_TENSORS: no)

    return cupy.from_dlpack(images.to_dlpack())


def _tensor(name: str, array: Any) -> Any:
    if isinstance(array, np.ndarray):
        return pb_utils.Tensor(name, array)
    return pb_utils.Tensor.from_dlpack(name, array)  # stays in GPU memory for the next step


class Preprocess:
    """IMAGES [B,H,W,3] uint8 RGB -> each detector's input at its requested scale, and PARAMS.

    Host frames go through the detectors' own `prepare` (swscale, exactly as the embedded engine). Frames
    in GPU memory (DeepStream's batch through nvinferserver's CUDA buffer sharing, or a client's CUDA shared
    memory) are resized on the GPU and handed on there: no frame is copied to the host.
    """

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        frames = _frames(pb_utils.get_input_tensor_by_name(request, "IMAGES"))
        xp = array_module(frames)
        # On a GPU, work on the frames' own device (one instance per GPU); CuPy starts on device 0.
        with nullcontext() if xp is np else frames.device:
            tensors, params = self._inputs(request, frames, xp)
        row = np.asarray(params, np.float32).reshape(1, -1)
        tensors.append(pb_utils.Tensor("PARAMS", np.repeat(row, len(frames), axis=0)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    @staticmethod
    def _inputs(request: Any, frames: Any, xp: Any) -> tuple[list[Any], list[list[float]]]:
        tensors, params = [], []
        for object_class, (_, detector) in MODELS.items():
            prefix = object_class.name
            scale = _optional(request, f"{prefix}_SCALE", DEFAULT_SCALE)
            threshold = _optional(request, f"{prefix}_THRESHOLD", DEFAULT_THRESHOLD)
            if not scale > 0:  # not asked for (0, or not a number): the smallest input, detections ignored
                blob, (sx, sy) = (
                    xp.zeros((len(frames), 3, NETWORK_STRIDE, NETWORK_STRIDE), xp.float32),
                    (0.0, 0.0),
                )
            elif xp is np:
                blob, (sx, sy) = detector.prepare(list(frames), scale)
            else:
                blob, (sx, sy) = device_input(frames, scale, detector.normalise)
            tensors.append(_tensor(f"{prefix}_IMAGE", blob))
            params.append([sx, sy, threshold])
        if xp is not np:  # Triton reads the outputs on its own stream: CuPy's work must be done by then
            xp.cuda.get_current_stream().synchronize()
        return tensors, params


class OnnxDetector:
    """A detector on the CPU (configs/cpu.pbtxt): ONNX Runtime over the version folder's model file, the
    int8 copy where there is one unless the config's `precision` parameter says fp32."""

    model: LoadedModel

    def initialize(self, args: dict[str, str]) -> None:
        folder = Path(args["model_repository"])
        options = RuntimeOptions(
            device="cpu",
            precision=_parameter(args, "precision", "auto"),
            threads=int(_parameter(args, "threads", "0")) or None,
        )
        repository = ModelRepository(folder.parent)
        self.model = load_model(repository, args["model_name"], options, version=int(args["model_version"]))

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            blob = pb_utils.get_input_tensor_by_name(request, self.model.spec.input_names[0]).as_numpy()
            outputs = self.model.run(blob)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(name, value) for name, value in outputs.items()]
                )
            )
        return responses


class Postprocess:
    """The detectors' outputs -> DETECTIONS [B, K, 7] (see ensemble_contract)."""

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        inputs = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
        params = inputs["PARAMS"][0]
        batch = len(inputs["PARAMS"])
        found = []
        for k, (object_class, (_, detector)) in enumerate(MODELS.items()):
            sx, sy, threshold = (float(v) for v in params[3 * k : 3 * k + 3])
            if sx <= 0:
                continue
            prefix = f"{object_class.name}_"
            outputs = {name.removeprefix(prefix): v for name, v in inputs.items() if name.startswith(prefix)}
            found.append(detector.decode(outputs, threshold, (sx, sy)))
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("DETECTIONS", to_rows(Detections.concat(found), batch))]
        )
