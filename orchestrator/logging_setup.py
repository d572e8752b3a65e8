"""structlog JSON logs on stderr, configured once by the entry point (never at import)."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "warning") -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # sys.stderr is looked up per logger, not bound once: it may be replaced (tests, daemons).
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
    )
