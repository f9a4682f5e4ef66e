"""The table `bench/compare.py` prints, its ratios (also kept in the JSON) and the issue's targets checked against
the run. Every ratio is of two figures from the same run: the machine's noise moves both."""

from __future__ import annotations

NGINX = "nginx proxy_pass"
FLOOR = "floor proxy (skyrelay's HTTP stack)"
REALISTIC = "skyrelay, realistic config"
MINIMAL = "skyrelay, minimal config"


def report(results: dict, connections: int) -> tuple[str, dict]:
    scenarios = results["scenarios"]
    lines = [f"| scenario | workload | req/s @{connections} | p50 @1 | added p50 @1 | p99 @1 | p50 @{connections} "
             f"| p99 @{connections} | CPU/req | vs nginx | vs floor | CPU/chunk | first byte | added first byte "
             "| peak RSS | ready | errors |",
             "|" + "---|" * 17]
    for scenario, data in scenarios.items():
        for label, row in data["rows"].items():
            lines.append(_line(scenarios, scenario, data, label, row, connections))
    ratios = _ratios(scenarios, connections)
    lines.append("")
    lines += [f"{name}: {value:.2f}x" for name, value in ratios.items()]
    lines.append("\nTargets (issue 13), this run:")
    lines += _targets(scenarios, ratios, connections)
    return "\n".join(lines), ratios


def _row(scenarios: dict, scenario: str, label: str) -> dict | None:
    return scenarios.get(scenario, {}).get("rows", {}).get(label)


def cpu(scenarios: dict, scenario: str, label: str, connections: int) -> float | None:
    row = _row(scenarios, scenario, label)
    return row[connections]["cpu_us_per_request"] if row else None


def per_chunk_us(scenarios: dict, scenario: str, label: str, connections: int) -> float | None:
    """What a stream costs beyond the whole answer of the same route, over its upstream events."""
    row = _row(scenarios, scenario, label)
    base = cpu(scenarios, scenario, row["base"], connections) if row and row.get("chunks") else None
    if base is None or not row[connections]["cpu_us_per_request"]:
        return None
    return max(row[connections]["cpu_us_per_request"] - base, 0.0) / row["chunks"]


def added_p50_ms(scenarios: dict, scenario: str, label: str) -> float | None:
    """p50 at one connection over the direct call's, same workload (not for trickled streams: their 66 ms of
    upstream sleeps, late by what the loaded machine makes them, drown a fraction of a millisecond)."""
    row, direct = _row(scenarios, scenario, label), _row(scenarios, "direct", label)
    if not (row and direct) or scenario == "direct" or "trickled" in label:
        return None
    return row[1]["p50_ms"] - direct[1]["p50_ms"]


def added_first_byte_ms(scenarios: dict, scenario: str, label: str) -> float | None:
    row, direct = _row(scenarios, scenario, label), _row(scenarios, "direct", label)
    if not (row and direct and "first_byte" in row and "first_byte" in direct) or scenario == "direct":
        return None
    return row["first_byte"]["p50_ms"] - direct["first_byte"]["p50_ms"]


def _line(scenarios: dict, scenario: str, data: dict, label: str, row: dict, connections: int) -> str:
    many, one = row[connections], row[1]
    spent = many["cpu_us_per_request"]

    def versus(other: str) -> str:  # the baselines are not compared with each other, nor with themselves
        theirs = cpu(scenarios, other, label, connections)
        baseline = scenario in ("direct", NGINX, other)
        return f"{spent / theirs:.1f}x" if theirs and spent and not baseline else ""

    chunk = per_chunk_us(scenarios, scenario, label, connections)
    added, first = added_p50_ms(scenarios, scenario, label), row.get("first_byte")
    added_first = added_first_byte_ms(scenarios, scenario, label)
    cells = [scenario, label, f"{many['rps']:,.0f}", f"{one['p50_ms']:.3f} ms", _ms(added), f"{one['p99_ms']:.3f} ms",
             f"{many['p50_ms']:.3f} ms", f"{many['p99_ms']:.3f} ms", f"{spent:.0f} us" if scenario != "direct" else "",
             versus(NGINX), versus(FLOOR), f"{chunk:.1f} us" if chunk is not None else "",
             _ms(first["p50_ms"] if first else None), _ms(added_first),
             f"{data['peak_rss_mb']:.0f} MB" if data["peak_rss_mb"] else "",
             f"{data['ready_s']:.2f} s" if data["ready_s"] else "", str(many["errors"] + one["errors"] or "")]
    return "| " + " | ".join(cells) + " |"


def _ms(value: float | None) -> str:
    return f"{value:.3f} ms" if value is not None else ""


def _ratios(scenarios: dict, connections: int) -> dict:
    """CPU per request of one scenario over another's, chat (non-streaming) and the 20-chunk stream."""
    ratios = {}
    pairs = [(REALISTIC, NGINX), (REALISTIC, FLOOR), (MINIMAL, NGINX), (MINIMAL, FLOOR), (FLOOR, NGINX)]
    pairs += [(name, sky) for name in scenarios if name.startswith("LiteLLM") for sky in (MINIMAL, REALISTIC)]
    for label in ("chat", "stream (20 chunks)"):
        for mine, theirs in pairs:
            a, b = cpu(scenarios, mine, label, connections), cpu(scenarios, theirs, label, connections)
            if a and b:
                ratios[f"CPU/req {label}: {mine} / {theirs}"] = a / b
    for name in [NGINX, *(n for n in scenarios if n.startswith("LiteLLM"))]:
        mine, sky = _row(scenarios, name, "chat"), _row(scenarios, REALISTIC, "chat")
        if mine and sky and mine[connections]["rps"]:
            ratios[f"req/s chat @{connections}: {REALISTIC} / {name}"] = \
                sky[connections]["rps"] / mine[connections]["rps"]
        theirs, ours = added_p50_ms(scenarios, name, "chat"), added_p50_ms(scenarios, REALISTIC, "chat")
        if theirs and ours and theirs > 0 and ours > 0:
            ratios[f"added p50 @1 chat: {REALISTIC} / {name}"] = ours / theirs
    return ratios


def _targets(scenarios: dict, ratios: dict, connections: int) -> list[str]:
    """Each target of the issue with this run's figure, met or not."""
    def check(name: str, value: float | None, limit: float, unit: str, below: bool = True) -> str:
        if value is None:
            return f"- {name}: not measured in this run"
        met = value <= limit if below else value >= limit
        gap = "" if met else f" (gap {abs(value - limit):.3g}{unit})"
        return f"- {name}: {value:.3g}{unit}, target {'<=' if below else '>='} {limit:g}{unit}: " + \
               ("met" if met else "NOT met" + gap)

    litellm = [v for k, v in ratios.items() if k.startswith("CPU/req chat: LiteLLM") and k.endswith(REALISTIC)]
    realistic = scenarios.get(REALISTIC, {})
    return [
        check("realistic chat CPU/req vs nginx", ratios.get(f"CPU/req chat: {REALISTIC} / {NGINX}"), 4, "x"),
        check("realistic chat CPU/req vs the floor proxy", ratios.get(f"CPU/req chat: {REALISTIC} / {FLOOR}"),
              1.5, "x"),
        check("LiteLLM / realistic chat CPU/req (least of as-installed, tuned)", min(litellm) if litellm else None,
              100, "x", below=False),
        check(f"realistic chat req/s @{connections} on one core",
              (_row(scenarios, REALISTIC, "chat") or {}).get(connections, {}).get("rps"), 14_000, "", below=False),
        check("realistic CPU per pass-through chunk (trickled)",
              per_chunk_us(scenarios, REALISTIC, "trickled stream", connections), 10, " us"),
        *[check(f"CPU per translated chunk ({name}, trickled)",
                per_chunk_us(scenarios, MINIMAL, f"OpenAI in, {name} out, trickled stream", connections), 20, " us")
          for name in ("Anthropic", "Bedrock")],
        check("realistic added time to first byte of a stream",
              added_first_byte_ms(scenarios, REALISTIC, "stream (20 chunks)"), 0.3, " ms"),
        check("realistic added p50 @1, chat", added_p50_ms(scenarios, REALISTIC, "chat"), 0.2, " ms"),
        check("realistic peak RSS", realistic.get("peak_rss_mb"), 60, " MB"),
        check("realistic time to ready", realistic.get("ready_s"), 0.5, " s"),
    ]


def from_json(results: dict) -> dict:
    """Results read back from compare.py's JSON (whose keys are strings: connection counts become ints again)."""
    def ints(value):
        if isinstance(value, dict):
            return {int(k) if isinstance(k, str) and k.isdigit() else k: ints(v) for k, v in value.items()}
        return value
    return ints(results)


if __name__ == "__main__":  # the table again from a saved run: python bench/compare_report.py out.json
    import json
    import sys

    from compare_workers import report as workers_report

    saved = from_json(json.loads(open(sys.argv[1]).read()))
    print(report(saved, saved["meta"]["connections"])[0])
    if "workers" in saved:
        print("\n" + workers_report(saved["workers"], saved["meta"]["connections"]))
