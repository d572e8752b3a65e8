"""The control plane's HTTP face (FastAPI): outputs and health now; the registry and audit log next."""
