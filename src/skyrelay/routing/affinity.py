"""Prefix affinity: requests that share a prompt prefix go to the same deployment, so its prompt cache keeps hitting.

The prefix key is the client's `prompt_cache_key`, else its `user`, else the prompt's leading text: the system
(and developer) messages, then the first user message, cut at PREFIX_CHARS, about the 1,024 tokens below which the
clouds cache nothing. So a long shared system prompt is the key on its own, and a short one joins the conversation's
first question (which every turn of that conversation repeats). The key is hashed with CRC-32, stable across
processes and restarts (Python's str hash is not), once per request: it is kept on the request's context.

Deployments sit on a ring of virtual nodes, VNODES per unit of mean weight, so a heavier deployment owns more keys.
A key is served by the first deployment clockwise from its hash, unless that one is full: bounded-load consistent
hashing (Mirrokni, Thorup and Zadimoghaddam, 2016) lets a deployment hold at most ceil(LOAD_FACTOR * (in flight + 1)
/ n) requests, so a hot prefix spills to the next deployment on the ring instead of piling up. A deployment that is
unavailable is not on the ring the planner hands over, so its keys move to the next one on the ring and the others
keep theirs. Standbys (weight 0) are not on the ring: they come last, in configuration order.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left

PREFIX_CHARS = 4096
VNODES = 40
LOAD_FACTOR = 1.25
_MIX = 0x9E3779B1  # Fibonacci hashing spreads CRC-32's close values over the ring
_MASK = 0xFFFFFFFF
_RINGS_KEPT = 64  # rings are cached per set of available deployments; that set rarely changes


def prefix_key(request) -> int | None:
    """The request's prefix hash, computed on first use and kept on the context; None for a request without a
    prompt (embeddings) or without a context."""
    if request is None:
        return None
    key = request.prefix_key
    if key is None and request.prompt is not None:
        key = request.prefix_key = prefix_hash(request.prompt)
    return key


def prefix_hash(chat) -> int:
    extra = chat.extra
    if extra:
        named = extra.get("prompt_cache_key") or extra.get("user")
        if isinstance(named, str) and named:
            return _hash(named)
    parts = []
    size = 0
    for message in chat.messages:
        role = message.get("role")
        if role not in ("system", "developer", "user"):
            continue
        text = _text(message.get("content"))
        parts.append(text)
        size += len(text)
        if role == "user" or size >= PREFIX_CHARS:
            break
    return _hash("\x00".join(parts)[:PREFIX_CHARS])


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text, in order (images and the like add nothing)
        return "".join(part.get("text", "") for part in content if isinstance(part, dict)
                       and isinstance(part.get("text"), str))
    return ""


def _hash(text: str) -> int:
    return (zlib.crc32(text.encode("utf-8", "surrogatepass")) * _MIX) & _MASK


class Ring:
    __slots__ = ("points", "owners")

    def __init__(self, deployments) -> None:
        mean = sum(d.weight for d in deployments) / len(deployments)
        nodes = sorted((_hash(f"{d.name}#{i}"), index) for index, d in enumerate(deployments)
                       for i in range(max(1, round(VNODES * d.weight / mean))))
        self.points = [point for point, _ in nodes]
        self.owners = [deployments[index] for _, index in nodes]


def affinity_order(deployments, key: int, in_flight) -> list:
    """The deployments for a request of prefix hash `key`: its ring owner first unless full, then the ring."""
    weighted = [d for d in deployments if d.weight > 0]
    standby = [d for d in deployments if not d.weight > 0] if len(weighted) < len(deployments) else []
    if not weighted:
        return standby
    ring = _ring(tuple(weighted))
    n = len(weighted)
    capacity = math.ceil(LOAD_FACTOR * (sum(in_flight(d.name) for d in weighted) + 1) / n)
    points, owners = ring.points, ring.owners
    size = len(points)
    start = bisect_left(points, key)
    order, full, seen = [], [], set()
    for step in range(size):
        d = owners[(start + step) % size]
        if d.name in seen:
            continue
        seen.add(d.name)
        (order if in_flight(d.name) < capacity else full).append(d)
        if len(seen) == n:
            break
    order += full
    order += standby
    return order


_rings: dict[tuple, Ring] = {}


def _ring(deployments: tuple) -> Ring:
    ring = _rings.get(deployments)
    if ring is None:
        if len(_rings) >= _RINGS_KEPT:
            _rings.clear()
        ring = _rings[deployments] = Ring(deployments)
    return ring
