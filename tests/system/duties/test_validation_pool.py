"""Validation in a pool of worker processes: it works beside in-process report checks and
survives a killed worker."""

from __future__ import annotations

import asyncio
from datetime import date

from tests.support.paths import EXAMPLES


async def test_validation_in_the_pool_works_after_reports_were_checked_in_this_process() -> None:
    from gateway.duties.report_documents import build_eusr, build_tsr
    from gateway.duties.validation import Validator, validate_report

    period = {"start": date(2026, 10, 1), "end": date(2026, 10, 31), "reporter": "POP000001"}
    # as a gateway without a pool does it: in a worker thread
    assert (await asyncio.to_thread(validate_report, build_tsr([], **period))).valid  # type: ignore[arg-type]
    assert (await asyncio.to_thread(validate_report, build_eusr([], **period))).valid  # type: ignore[arg-type]
    validator = Validator(1)  # its worker must not inherit the loaded SaxonC runtime by fork
    try:
        result = await validator.validate((EXAMPLES / "invoice.xml").read_bytes())
    finally:
        validator.close()
    assert result.layers_run == ["xml", "schema", "en16931", "peppol"]


async def test_a_validation_pool_whose_worker_died_is_replaced() -> None:
    import os
    import signal

    from gateway.duties.validation import Validator

    invoice = (EXAMPLES / "invoice.xml").read_bytes()
    validator = Validator(1)
    try:
        assert (await validator.validate(invoice)).layers_run[-1] == "peppol"
        for pid in list(validator._pool._processes):  # the out-of-memory killer, say
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert (await validator.validate(invoice)).layers_run[-1] == "peppol"
    finally:
        validator.close()
