# The orchestrator's API (camera registry, audit log, reports); no GPU, no video.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md /app/
COPY orchestrator /app/orchestrator
RUN pip install --no-cache-dir "/app[server]"
CMD ["python", "-m", "orchestrator.dataplane.deepstream.api"]
