"""Instructions per iteration of an in-process benchmark loop, counted by valgrind's callgrind. Not a test.

Run: .venv/bin/python bench/instructions.py [--small 200 --large 2200] -- CMD ... {n} ...
CMD is run twice under `valgrind --tool=callgrind`, with `{n}` replaced by the small and the large count; the
figure is (instructions of the large run - those of the small one) / (large - small): the start-up, imports and
warm-up cancel out. Instruction counts are deterministic, so they compare before and after a change on a shared,
loaded machine where CPU timings swing by 2-3x. Only user-space instructions of the process itself count (the
kernel's work for a syscall does not, nor child processes such as a static upstream).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile


def instructions(cmd: list[str], n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        argv = [part.replace("{n}", str(n)) for part in cmd]
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            found = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2200)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not any("{n}" in part for part in cmd):
        sys.exit("the command must take the iteration count as {n}")
    small, large = instructions(cmd, args.small), instructions(cmd, args.large)
    print(f"{(large - small) / (args.large - args.small):,.0f} instructions per iteration")


if __name__ == "__main__":
    main()
