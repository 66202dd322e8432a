"""The changed-since index every source table carries, so reconciliation reads what changed, not the table.

Every entity write stamps `recon_bucket` (a write shard derived from the item's `pk`) next to `updated_at`.
A sparse global secondary index keyed by (`recon_bucket`, `updated_at`) then lists, per bucket, the entities in
the order they were last written; the reconciler queries each bucket for `updated_at >= <its watermark>`.

Why buckets: one constant partition key would put every write of the table on a single index partition, and
a throttled index throttles the table's writes. `BUCKETS` shards spread the writes; a pass issues one Query
per bucket. The count is part of the table contract: changing it requires rewriting every entity's bucket.
"""

from __future__ import annotations

import zlib

INDEX_NAME = "changed-since"
BUCKET_ATTRIBUTE = "recon_bucket"
UPDATED_AT_ATTRIBUTE = "updated_at"
BUCKETS = 16


def bucket_of(pk: str) -> str:
    """The write shard of the item with partition key `pk`: a string in "0".."BUCKETS-1".

    crc32, not hash(): Python salts str hashes per process, and every writer must agree.
    """
    return str(zlib.crc32(pk.encode()) % BUCKETS)


def all_buckets() -> list[str]:
    """Every bucket a reader must query to see every entity."""
    return [str(b) for b in range(BUCKETS)]
