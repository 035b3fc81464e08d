-- Step 6: key grain state of the partition-batched pipeline, one row per (pipeline, key).
--
-- Key grains write here in groups: one multi-row upsert per group, in the same transaction as the group's results
-- (pipeline_window_results, late events, dead letters), so a key's state and what it emitted are stored together
-- or not at all. version grows by one per write; a write that expects another version (a second activation of the
-- same key) changes nothing and is refused.

CREATE TABLE pipeline_key_state (
    pipeline   text        NOT NULL,
    key        text        NOT NULL,
    version    bigint      NOT NULL,
    payload    bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, key)
);
