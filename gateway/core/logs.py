"""structlog set-up: JSON lines in production, readable console output in development.

The request id is bound in a context variable by the HTTP middleware, so every line a request
causes carries it without passing it around.

Nothing secret may reach a log line: a traceback is rendered plain, without the local variables
of its frames (those hold settings, DSNs and keys), in both formats; and every string of a line
(the message, the fields, the traceback text, stdlib records) has its URL passwords masked.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, WrappedLogger

from gateway.core.redact import mask_url_credentials, redact
from gateway.core.tracing import add_trace_ids

__all__ = ["configure_logging", "redact_credentials"]


def redact_credentials(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Mask URL passwords in every string of the line, the rendered traceback included."""
    return {key: redact(value) for key, value in event_dict.items()}


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Standard library records (asyncio, aiohttp, asyncpg) rendered like structlog's lines, in the
    same format and with the same masking; the final mask also covers what a renderer adds."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_url_credentials(super().format(record))


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """Configure structlog and the standard library logging it feeds into."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    enrich: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    safe: list[structlog.types.Processor] = [
        # A plain traceback (the standard library's, never with locals) as text in "exception",
        # rendered before the masking so the masking sees it; the console renderer prints it.
        structlog.processors.format_exc_info,
        redact_credentials,
    ]
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*enrich, *safe, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _RedactingFormatter(
            foreign_pre_chain=[*enrich, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *safe, renderer],
        )
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler])
