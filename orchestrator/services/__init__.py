"""Services of the control plane: registry, audit log, reports, keys. They hold no HTTP."""
