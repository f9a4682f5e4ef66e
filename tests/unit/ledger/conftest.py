"""The ledger tests' own table, on SQLite and PostgreSQL."""

from tests.support.ledger_tables import ledger_store, ledger_url  # noqa: F401  (fixtures)
