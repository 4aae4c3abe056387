"""structlog, configured once per process.

JSON lines when stdout is not a terminal (production, CI, containers), a readable console
renderer when it is. Context such as ``job_id``, ``scene_id``, ``stage`` and ``duration_ms``
is bound as key-value pairs, never formatted into the message.
"""

from __future__ import annotations

import logging
import sys

import structlog

from modomo.settings import Settings

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(settings: Settings) -> None:
    """Set up structlog for this process; later calls replace the configuration."""
    level = _LEVELS.get(settings.log_level.lower(), logging.INFO)
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
