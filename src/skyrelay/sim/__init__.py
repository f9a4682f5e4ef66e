"""The capacity simulator: the gateway's own routing (planner, strategies, quotas, health, policies) driven by
simulated traffic against simulated clouds on a simulated clock. Imports routing/ and config/, never server/ or
providers/. `skyrelay simulate` (run.py) is the command; docs/simulate.md the model, its assumptions and limits."""
