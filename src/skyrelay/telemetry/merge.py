"""Several workers' Prometheus texts as one gateway's: what `/metrics` answers under `serve --workers N`.

Counters and histograms add up (a histogram's buckets are cumulative counts, so they add too): the sum of the
workers' counters is the gateway's. A gauge is one worker's view (its breakers, its share of a quota, its spool),
so each worker's gauges are kept apart under a `worker` label: `sum by (...)`, `max by (...)` as the question
needs. Only the text our own renderers write is expected: `# HELP` before `# TYPE`, no timestamps.
"""

from __future__ import annotations

from .exposition import number

WORKER_LABEL = "worker"
_ADDED = ("counter", "histogram", "summary")


class _Family:
    __slots__ = ("help", "kind", "samples")

    def __init__(self, help_text: str):
        self.help = help_text
        self.kind = "untyped"
        self.samples: dict[str, float] = {}  # series (name and labels) -> value, in first-seen order


def merge(parts: list[tuple[str, bytes]]) -> bytes:
    """One text from (worker, its text) pairs: counters and histograms summed, gauges labelled by worker."""
    families: dict[str, _Family] = {}
    for worker, text in parts:
        family = None
        for line in text.decode().splitlines():
            if line.startswith("# HELP "):
                name, _, help_text = line[7:].partition(" ")
                family = families.get(name)
                if family is None:
                    family = families[name] = _Family(help_text)
            elif line.startswith("# TYPE "):
                name, _, kind = line[7:].partition(" ")
                family = families.get(name)
                if family is None:
                    family = families[name] = _Family("")
                family.kind = kind
            elif line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")  # a label value may hold a space; the value cannot
                if family is None:  # a sample before any HELP or TYPE line: a family of its own
                    family = families.setdefault(series.partition("{")[0], _Family(""))
                if family.kind not in _ADDED:
                    series = _labelled(series, worker)
                family.samples[series] = family.samples.get(series, 0.0) + float(value)
    out: list[str] = []
    for name, family in families.items():
        if family.help:
            out.append(f"# HELP {name} {family.help}")
        out.append(f"# TYPE {name} {family.kind}")
        out.extend(f"{series} {number(value)}" for series, value in family.samples.items())
    out.append("")
    return "\n".join(out).encode()


def _labelled(series: str, worker: str) -> str:
    if series.endswith("}"):
        return f'{series[:-1]},{WORKER_LABEL}="{worker}"}}'
    return f'{series}{{{WORKER_LABEL}="{worker}"}}'
