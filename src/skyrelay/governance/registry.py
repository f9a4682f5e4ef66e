"""Keys and teams made through the admin API: written to the database, served from memory.

Each replica keeps every stored key in its KeyBook, by HMAC digest, and polls the store's revision twice a second
off the request path: a key created, changed or revoked through one replica works (or stops) on every other
within a second. A revocation also raises the `revoked:<name>` flag in the shared state, which every replica
reads once a second whatever the database's health. Keys declared in the configuration are listed beside the
stored ones, read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any, Callable

from .. import errors
from ..config.model import Problem
from ..db import parse_url
from . import records
from .principals import KeyBook, Principal
from .store import Row, Store, is_conflict

log = logging.getLogger("skyrelay.governance")
_UNREADABLE = (ValueError, TypeError, KeyError, LookupError, OverflowError, AttributeError)

POLL_S = 0.5  # how often a replica reads the store's revision
LOAD_TIMEOUT_S = 5.0  # how long a starting gateway waits for its first read of the store
KEY_PREFIX = "sk-"
REVOKED = "revoked:"  # the shared-state flag naming a revoked key


def stored_digest(secret: bytes, key: str) -> str:
    """What the database keeps of a key: HMAC-SHA256 with the server secret over the key's SHA-256 (the same
    SHA-256 the lookup computes once for declared and stored keys alike)."""
    return hmac.digest(secret, hashlib.sha256(key.encode()).digest(), "sha256").hex()


class Registry:
    def __init__(self, config: Any, keys: KeyBook, state: Any):
        self.config = config
        self.keys = keys
        self.state = state
        self.store = Store(parse_url(config.database.url))
        configured = config.server.key_secret
        self._secret: bytes | None = configured.reveal().encode() if configured is not None else None
        self._groups = list(config.model_groups)
        self._revision: str | None = None
        self._teams: list[Row] = []
        self._keys: list[Row] = []
        self._lock = asyncio.Lock()  # one admin write (validate, write, reload) at a time in this replica
        # Stored keys whose name a key of the configuration file also has: they would share its counters (named
        # by key), so they are left out of the key book, and a starting gateway refuses to serve (`clashes`).
        self.clashes: list[str] = []
        self.unreadable: dict[str, str] = {}  # stored rows left out: 'key <name>' -> the error's class
        self._poll: asyncio.Task | None = None
        self.healthy = True
        # Told (the principals before, those after) when a read of the store replaced the stored keys, from the
        # second read on (the first is the start's: what a restart seeds): the governor seeds budgets added.
        self.on_rebuilt: Callable[[list, list], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def load(self, timeout: float = LOAD_TIMEOUT_S) -> None:
        """The first read of the store, before the gateway listens: a restarted replica accepts its stored keys from
        its first request. A store that does not answer in time is left to the poll (and logged by it)."""
        try:
            await asyncio.wait_for(self.refresh(), timeout)
        except Exception:  # noqa: BLE001 - the poll retries and says so
            pass

    def start(self) -> None:
        if self._poll is None:
            self._poll = asyncio.get_running_loop().create_task(self._poll_forever())

    async def aclose(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            try:
                await self._poll
            except asyncio.CancelledError:
                pass
            self._poll = None
        if self.store.connected:  # closing a connection may block; a store never opened closes at once
            await asyncio.get_running_loop().run_in_executor(None, self.store.close)
        else:
            self.store.close()

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - the database away: keep the keys known, say so once
                if self.healthy:
                    log.warning("key store unreachable (%s): serving the keys last read", type(exc).__name__)
                self.healthy = False
            else:
                if not self.healthy:
                    log.warning("key store reachable again")
                self.healthy = True
            await asyncio.sleep(POLL_S)

    async def refresh(self, force: bool = False) -> None:
        """Reload every stored key and team when the store's revision moved (or `force`)."""
        if not self.store.exists():  # no file yet: nothing stored, and no thread to wake for it
            return
        revision = await self.store.call("revision")
        if revision is None or (revision == self._revision and not force):
            return
        if self._secret is None:
            self._secret = await self.store.call("key_secret")
        teams, keys = await self.store.call("load")
        first = self._revision is None
        self._revision, self._teams, self._keys = revision, teams, keys
        before = self.keys.principals()
        self._rebuild()
        if not first and self.on_rebuilt is not None:
            self.on_rebuilt(before, self.keys.principals())

    def _rebuild(self) -> None:
        """The stored keys and teams as principals. A row that cannot be read (written by an older version, or by
        hand) is left out, and said once: one bad row must not stop every other key, nor a revocation. A key of an
        unreadable team is left out too, rather than served without its team's limits."""
        teams = dict(self.config.teams)
        unreadable: dict[str, str] = {}
        for row in self._teams:
            try:
                teams[row["name"]] = records.team_record(row["name"], row["spec"])
            except _UNREADABLE as exc:
                unreadable[f"team '{row['name']}'"] = type(exc).__name__
        stored, revoked, clashes = {}, set(), []
        declared = {key.name for key in self.config.keys.values()}
        for row in self._keys:
            if row["name"] in declared:
                clashes.append(row["name"])
                continue
            try:
                key = records.key_record(row["name"], row["digest"], row["spec"])
                if key.team is not None and f"team '{key.team}'" in unreadable:
                    raise LookupError("its team cannot be read")
                stored[bytes.fromhex(row["digest"])] = Principal(key, teams.get(key.team))
            except _UNREADABLE as exc:
                unreadable[f"key '{row['name']}'"] = type(exc).__name__
                continue
            if row["revoked_at"] is not None:
                revoked.add(row["name"])
        self.keys.set_stored(self._secret, stored, frozenset(revoked))
        for what in unreadable.keys() - self.unreadable.keys():
            log.error("the stored %s cannot be read (%s) and is not accepted; fix or delete it through the admin "
                      "API", what, unreadable[what])
        self.unreadable = unreadable
        if clashes != self.clashes:
            for name in clashes:
                log.error("the key '%s' is declared in the configuration file and was also made through the "
                          "admin API: the stored one is not accepted (they would share counters); rename the "
                          "declared key", name)
            self.clashes = clashes

    def clash_problems(self) -> list[Problem]:
        """The clashes as configuration problems: a gateway starting with them refuses to serve."""
        return [Problem("keys", f"the key name '{name}' is already used by a key made through the admin API "
                                "(stored in the database): the two would share rate limits and budgets",
                        hint="rename the declared key") for name in self.clashes]

    # --- keys --------------------------------------------------------------------------------------------------

    async def create_key(self, body: Any) -> dict:
        spec = records.validate(body, ("name", *records.KEY_FIELDS), self._groups, create=True)
        name = spec.pop("name")
        async with self._lock:
            await self._fresh()
            self._check_new_name(name, "key", self._keys, self.config.keys.values())
            self._check_team(spec.get("team"))
            if self._secret is None:
                self._secret = await self.store.call("key_secret")
            secret = KEY_PREFIX + secrets.token_urlsafe(32)
            now = time.time()
            row = Row(id="key_" + secrets.token_hex(8), name=name, digest=stored_digest(self._secret, secret),
                      spec=spec, created_at=now, updated_at=now, revoked_at=None)
            await self._write("insert_key", row, name=name)
        view = records.key_view(row)
        view["key"] = secret  # the only time it is ever shown
        return view

    async def list_keys(self) -> list[dict]:
        await self._fresh()
        declared = [records.declared_key_row(key) for key in self.config.keys.values()]
        return [records.key_view(row) for row in declared + self._keys]

    async def get_key(self, key_id: str) -> dict:
        await self._fresh()
        return records.key_view(self._find(key_id, "key", self._keys, self._declared_keys()))

    async def update_key(self, key_id: str, body: Any) -> dict:
        patch = records.validate(body, records.KEY_FIELDS, self._groups, create=False)
        async with self._lock:
            await self._fresh()
            row = self._writable(self._find(key_id, "key", self._keys, self._declared_keys()), "key")
            if row["revoked_at"] is not None:
                raise errors.Conflict(f"key '{row['name']}' is revoked; create a new key instead", code="revoked")
            if "team" in patch:
                self._check_team(patch["team"])
            spec = {**row["spec"], **patch}
            await self._write("update_key", row["id"], spec, time.time())
        return await self.get_key(row["id"])

    async def revoke_key(self, key_id: str) -> dict:
        async with self._lock:
            await self._fresh()
            row = self._writable(self._find(key_id, "key", self._keys, self._declared_keys()), "key")
            if row["revoked_at"] is None:
                await self._write("revoke_key", row["id"], time.time())
        try:  # every replica reads the shared flags once a second, even with the database away
            await self.state.set_flag(REVOKED + row["name"])
        except Exception as exc:  # noqa: BLE001 - the store has it; the others see it at their next poll
            log.warning("revocation of key '%s' not flagged in the shared state (%s)", row["name"],
                        type(exc).__name__)
        return await self.get_key(row["id"])

    # --- teams -------------------------------------------------------------------------------------------------

    async def create_team(self, body: Any) -> dict:
        spec = records.validate(body, ("name", *records.TEAM_FIELDS), self._groups, create=True)
        name = spec.pop("name")
        async with self._lock:
            await self._fresh()
            self._check_new_name(name, "team", self._teams, self.config.teams.values())
            now = time.time()
            row = Row(id="team_" + secrets.token_hex(8), name=name, spec=spec, created_at=now, updated_at=now)
            await self._write("insert_team", row, name=name)
        return records.team_view(row)

    async def list_teams(self) -> list[dict]:
        await self._fresh()
        declared = [records.declared_team_row(team) for team in self.config.teams.values()]
        return [records.team_view(row) for row in declared + self._teams]

    async def get_team(self, team_id: str) -> dict:
        await self._fresh()
        return records.team_view(self._find(team_id, "team", self._teams, self._declared_teams()))

    async def update_team(self, team_id: str, body: Any) -> dict:
        patch = records.validate(body, records.TEAM_FIELDS, self._groups, create=False)
        async with self._lock:
            await self._fresh()
            row = self._writable(self._find(team_id, "team", self._teams, self._declared_teams()), "team")
            await self._write("update_team", row["id"], {**row["spec"], **patch}, time.time())
        return await self.get_team(row["id"])

    async def delete_team(self, team_id: str) -> dict:
        async with self._lock:
            await self._fresh()
            row = self._writable(self._find(team_id, "team", self._teams, self._declared_teams()), "team")
            members = [k["name"] for k in self._keys if k["spec"].get("team") == row["name"] and not k["revoked_at"]]
            if members:
                raise errors.Conflict(f"team '{row['name']}' still has {len(members)} active key(s) "
                               f"({', '.join(members[:5])}); revoke them or move them to another team first",
                               code="team_in_use")
            await self._write("delete_team", row["id"])
        view = records.team_view(row)
        view["deleted"] = True
        return view

    # --- helpers -----------------------------------------------------------------------------------------------

    async def _fresh(self) -> None:
        """Read the store before deciding (another replica may have written); a store that cannot be read is a
        503 for the admin call, never a guess."""
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001
            raise errors.StoreUnavailable(exc) from None

    async def _write(self, method: str, *args: Any, name: str | None = None) -> None:
        try:
            await self.store.call(method, *args)
        except Exception as exc:  # noqa: BLE001
            if name is not None and is_conflict(exc):  # another replica took the name in the meantime
                raise errors.InvalidRequest(f"the name '{name}' is already used", param="name",
                                            code="duplicate_name") from None
            raise errors.StoreUnavailable(exc) from None
        await self.refresh(force=True)

    def _declared_keys(self) -> list[dict]:
        return [records.declared_key_row(key) for key in self.config.keys.values()]

    def _declared_teams(self) -> list[dict]:
        return [records.declared_team_row(team) for team in self.config.teams.values()]

    @staticmethod
    def _find(wanted: str, what: str, stored: list[Row], declared: list[dict]) -> dict:
        """By id, else by name (the CLI's `show ci-bot`)."""
        for row in (*declared, *stored):
            if row["id"] == wanted:
                return row
        for row in (*declared, *stored):
            if row["name"] == wanted:
                return row
        raise errors.NotFound(f"no {what} with id or name '{wanted[:80]}'", param="id", code=f"{what}_not_found")

    @staticmethod
    def _writable(row: dict, what: str) -> dict:
        if row.get("source") == "config":
            raise errors.Conflict(f"{what} '{row['name']}' is declared in the configuration file and is read-only "
                           "through the admin API: change it in the file (and reload)", code="read_only")
        return row

    @staticmethod
    def _check_new_name(name: str, what: str, stored: list[Row], declared: Any) -> None:
        if any(row["name"] == name for row in stored) or any(d.name == name for d in declared):
            raise errors.InvalidRequest(f"a {what} named '{name}' already exists (names are unique, revoked keys "
                                        "included)", param="name", code="duplicate_name")

    def _check_team(self, team: str | None) -> None:
        if team is None:
            return
        known = [*self.config.teams, *(row["name"] for row in self._teams)]
        if team not in known:
            raise errors.InvalidRequest(f"unknown team '{team[:80]}'; teams: {', '.join(known) or 'none yet'}",
                                        param="team", code="invalid_value")
