"""The ledger: one record per client request and one per attempt that reached a cloud, written ahead to a local
spool and shipped in batches to the database, idempotent by (request id, attempt)."""
