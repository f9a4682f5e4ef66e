"""The `skyrelay simulate` command line: argparse only, so that building the CLI loads neither numpy nor
matplotlib (they are the `sim` extra, loaded when a simulation runs)."""

from __future__ import annotations

EVENT_LIMIT = 5_000_000  # expected requests above which `auto` picks the aggregated engine
ENGINES = ("auto", "event", "flow")


def add_arguments(parser) -> None:
    parser.add_argument("file", help="the scenario's YAML file")
    parser.add_argument("--out", "-o", default="simulation", help="directory for report.json and the plots")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help=f"event: every request; flow: flows per second; auto: event up to {EVENT_LIMIT:,} "
                             "requests (default: the scenario's `engine:`, else auto)")
    parser.add_argument("--sweep", help="FIELD=LOW:HIGH:STEP, e.g. deployments.aws-reserved.rpm=0:20000:2000")
    parser.add_argument("--event", action="append", default=[],
                        help="an outage: outage=DEPLOYMENT_OR_REGION@START-END (times in s or HH:MM)")
    parser.add_argument("--duration", type=float, help="simulate only this many seconds from the start")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
