"""The changed-since index contract: writers' buckets, the template's indexes and the reconciler's access agree."""

from __future__ import annotations

import zlib
from collections import Counter

from converge.contracts import with_tables
from converge.reconcile_index import BUCKET_ATTRIBUTE, BUCKETS, INDEX_NAME, UPDATED_AT_ATTRIBUTE, all_buckets, bucket_of
from localcloud.template import function_specs, load_template, resources_of_type

# Every service table that holds source entities (converge.contracts): each has the changed-since index.
SOURCE_TABLES = tuple(str(s.table) for s in with_tables() if s.layouts)


def test_a_bucket_is_a_stable_function_of_the_partition_key() -> None:
    # GIVEN a partition key
    pk = "ORDER#4f0c2a"
    # THEN its bucket is crc32-based (the same in every process, unlike hash()) and one of the queried buckets
    assert bucket_of(pk) == str(zlib.crc32(pk.encode()) % BUCKETS)
    assert bucket_of(pk) in all_buckets()
    assert len(all_buckets()) == BUCKETS


def test_buckets_spread_writes_evenly() -> None:
    # GIVEN 16,000 entity keys
    counts = Counter(bucket_of(f"PRODUCT#p{i}") for i in range(16_000))
    # THEN every bucket gets its share within 15%, so no index partition is hot
    assert set(counts) == set(all_buckets())
    assert max(counts.values()) < 1.15 * 1000
    assert min(counts.values()) > 0.85 * 1000


def test_every_source_table_has_the_sparse_changed_since_index() -> None:
    tables = resources_of_type(load_template(), "AWS::DynamoDB::Table")
    for name in SOURCE_TABLES:
        props = tables[name]["Properties"]
        # THEN the index is keyed by (bucket, updated_at), both strings, and projects the whole entity
        (index,) = props["GlobalSecondaryIndexes"]
        assert index["IndexName"] == INDEX_NAME, name
        assert index["KeySchema"] == [
            {"AttributeName": BUCKET_ATTRIBUTE, "KeyType": "HASH"},
            {"AttributeName": UPDATED_AT_ATTRIBUTE, "KeyType": "RANGE"},
        ], name
        assert index["Projection"] == {"ProjectionType": "ALL"}, name
        types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
        assert types[BUCKET_ATTRIBUTE] == types[UPDATED_AT_ATTRIBUTE] == "S", name


def test_the_reconciler_may_query_exactly_those_indexes_and_use_its_state_table() -> None:
    template = load_template()
    spec = function_specs(template)["ReconcilerFunction"]
    # (the reconciler's role is declared in the template: its statements are the role's)
    policies = template["Resources"]["ReconcilerFunctionRole"]["Properties"]["Policies"]
    statements = [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]
    queried = [s["Resource"] for s in statements if "dynamodb:Query" in s["Action"]]
    # THEN Query is granted on the two indexes only, and the state table is named in the environment
    assert queried == [[{"Fn::Sub": f"${{{t}.Arn}}/index/{INDEX_NAME}"} for t in SOURCE_TABLES]]
    assert spec.environment["STATE_TABLE_NAME"] == {"Ref": "ReconcilerStateTable"}
    state_access = [s["Action"] for s in statements if s["Resource"] == {"Fn::GetAtt": ["ReconcilerStateTable", "Arn"]}]
    # (UpdateItem: it takes the sweep's suspects it has checked out of their set)
    assert state_access == [["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]]
