"""Run every benchmark and print its figures."""

from __future__ import annotations

import sys

from bench import (
    api_bench,
    as4_bench,
    circuit_bench,
    content_bench,
    e2e_bench,
    large_message_bench,
    phase4_bench,
    phive_bench,
    ratelimit_bench,
    scale_bench,
    smp_bench,
    validation_bench,
)
from gateway.core.logs import configure_logging


def main() -> int:
    configure_logging("console", "warning")
    as4_bench.main()
    large_message_bench.main()
    smp_bench.main()
    e2e_bench.main()
    scale_bench.main()
    api_bench.main()
    circuit_bench.main()
    ratelimit_bench.main()
    validation_bench.main()
    phive_bench.main()
    content_bench.main()
    phase4_bench.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
