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
        for pid in validator.pids:  # the out-of-memory killer, say
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert (await validator.validate(invoice)).layers_run[-1] == "peppol"
    finally:
        validator.close()


async def test_documents_in_hand_of_a_worker_that_dies_are_tried_again() -> None:
    import os
    import signal

    from gateway.duties.validation import Validator

    invoice = (EXAMPLES / "invoice.xml").read_bytes()
    validator = Validator(2)
    try:
        await asyncio.gather(*(validator.validate(invoice) for _ in range(4)))
        first = validator.pids
        waiting = [asyncio.ensure_future(validator.validate(invoice)) for _ in range(6)]
        await asyncio.sleep(0.01)
        os.kill(first[0], signal.SIGKILL)
        results = await asyncio.gather(*waiting)
        assert all(r.layers_run[-1] == "peppol" for r in results)
        assert validator.pids and not set(validator.pids) & set(first)  # a new pool
    finally:
        validator.close()


def test_a_process_that_never_closed_its_validator_still_exits() -> None:
    import subprocess
    import sys

    script = (
        "import asyncio\n"
        "from gateway.duties.validation import Validator\n"
        "async def main():\n"
        "    validator = Validator(2)\n"
        f"    await validator.validate(open({str(EXAMPLES / 'invoice.xml')!r}, 'rb').read())\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
