"""`skyrelay demo` works as printed: its URL, its curl line and its openai snippet."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx2 as httpx


def start_demo() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "skyrelay.cli", "demo", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C" in line:
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("the demo did not print its instructions:\n" + "".join(lines))


def test_demo_instructions_work_as_printed(tmp_path):
    proc, text = start_demo()
    try:
        base = re.search(r"http://127\.0\.0\.1:\d+", text).group(0)
        key = re.search(r"Bearer ([\w.:-]+)", text).group(1)
        assert httpx.get(f"{base}/health/live").status_code == 200
        models = httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {key}"}).json()
        assert models["data"][0]["id"] == "chat"
        dashboard = re.search(r"the dashboard: (\S+) \(sign in with (\S+)\)", text)
        assert httpx.get(dashboard.group(1)).headers["content-type"].startswith("text/html")
        stats = httpx.get(f"{base}/admin/stats", headers={"authorization": f"Bearer {dashboard.group(2)}"})
        assert stats.status_code == 200

        curl = next(line.strip() for line in text.splitlines() if line.strip().startswith("curl "))
        out = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=20)
        assert '"choices"' in out.stdout, out.stdout + out.stderr

        snippet_start = text.index("from openai import OpenAI")
        snippet = "\n".join(line[2:] for line in text[snippet_start - 2:].split("\n\n")[0].splitlines())
        script = tmp_path / "snippet.py"
        script.write_text(snippet)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.split()) >= 5  # real-looking text came back, streamed
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
