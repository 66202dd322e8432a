"""The reconciler: scheduled comparison of every declared projection with its source, repairs, DLQ triage."""
