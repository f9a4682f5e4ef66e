"""Inbound wire formats <-> canonical: openai.py, anthropic.py."""
