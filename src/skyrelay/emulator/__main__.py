"""`python -m skyrelay.emulator CONFIG.yaml`: run the emulator without the gateway's CLI."""

from __future__ import annotations

import asyncio
import sys

from skyrelay.net.server import CannotListen

from .config import EmulatorConfigError
from .runner import run_emulator


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m skyrelay.emulator CONFIG.yaml", file=sys.stderr)
        return 2
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the emulator does not need it
        runner = asyncio.run
    try:
        runner(run_emulator(args[0]))
    except EmulatorConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CannotListen as exc:
        print(f"error: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
