"""Run every benchmark and print its figures."""

from __future__ import annotations

import sys

from bench import as4_bench


def main() -> int:
    as4_bench.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
