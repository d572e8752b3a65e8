# The DeepStream data plane: NGC's DeepStream 7.1 image with Triton (nvinferserver, gRPC and C API), the
# SDK's Python bindings (pyds: from NVIDIA's deepstream_python_apps release for this DeepStream version,
# never the unrelated `pyds` on PyPI), CuPy for the mask kernels, and the project.
FROM nvcr.io/nvidia/deepstream:7.1-triton-multiarch
ARG PYDS_WHEEL=https://github.com/NVIDIA-AI-IOT/deepstream_python_apps/releases/download/v1.2.0/pyds-1.2.0-cp310-cp310-linux_x86_64.whl
RUN /opt/nvidia/deepstream/deepstream/user_additional_install.sh \
    && apt-get update && apt-get install -y --no-install-recommends python3-pip python3-gi gir1.2-gst-rtsp-server-1.0 \
    && rm -rf /var/lib/apt/lists/* \
    && pip3 install --no-cache-dir "$PYDS_WHEEL"
WORKDIR /app
COPY pyproject.toml README.md /app/
COPY orchestrator /app/orchestrator
RUN pip3 install --no-cache-dir "/app[server,gpu]"
CMD ["python3", "-m", "orchestrator.dataplane.deepstream"]
