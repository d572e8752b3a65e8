# Triton for CityVeil: NGC's tritonserver with the project installed, because the ensemble's python-backend
# steps (cityveil_preprocess, cityveil_postprocess) run the same pre- and post-processing code as the
# embedded engine. The model repository is mounted at /models, never baked in (weights are not committed).
FROM nvcr.io/nvidia/tritonserver:24.08-py3
COPY pyproject.toml README.md /src/
COPY orchestrator /src/orchestrator
# The gpu extra brings CuPy: the preprocess step resizes batches that arrive in GPU memory where they lie.
RUN pip install --no-cache-dir "/src[gpu]"
