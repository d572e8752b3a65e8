"""Route groups; each is built by a function over the services it needs (no module state)."""
