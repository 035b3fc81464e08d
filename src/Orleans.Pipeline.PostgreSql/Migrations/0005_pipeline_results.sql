-- Step 5: what the pipelines produce, for analysts and dashboards.
--
-- pipeline_window_results holds one row per window (pipeline, key, start, end): every emission upserts it, and a
-- row only moves forward in revision, so redelivery or replay of any batch never duplicates or regresses a row.
-- A retracted session window keeps its row with kind 'retraction' (pipeline_windows hides it). change_id grows with
-- every insert or update: readers resume "after change N".

CREATE SEQUENCE pipeline_result_changes;

CREATE TABLE pipeline_window_results (
    pipeline     text             NOT NULL,
    key          text             NOT NULL,
    window_start bigint           NOT NULL,
    window_end   bigint           NOT NULL,
    revision     integer          NOT NULL,
    kind         text             NOT NULL CHECK (kind IN ('partial', 'final', 'update', 'retraction')),
    event_count  bigint           NOT NULL,
    watermark    bigint           NOT NULL,
    output_values jsonb           NOT NULL,
    change_id    bigint           NOT NULL DEFAULT nextval('pipeline_result_changes'),
    updated_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, key, window_start, window_end)
);

CREATE INDEX pipeline_window_results_by_change ON pipeline_window_results (pipeline, change_id);
CREATE INDEX pipeline_window_results_by_end ON pipeline_window_results (pipeline, window_end);

CREATE VIEW pipeline_windows AS
SELECT pipeline, key, window_start, window_end,
       to_timestamp(window_start / 1000.0) AS starts_at, to_timestamp(window_end / 1000.0) AS ends_at,
       revision, kind, event_count, output_values, updated_at
FROM pipeline_window_results
WHERE kind <> 'retraction';

-- Events that arrived after every window they belonged to had expired, once each: a batch is identified by its
-- producer and sequence, an event by its index in the batch.
CREATE TABLE pipeline_late_events (
    pipeline       text        NOT NULL,
    key            text        NOT NULL,
    producer_id    uuid        NOT NULL,
    batch_sequence bigint      NOT NULL,
    event_index    integer     NOT NULL,
    event_time     bigint      NOT NULL,
    watermark      bigint      NOT NULL,
    field_values   jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, key, producer_id, batch_sequence, event_index)
);

-- What the pipeline could not apply, with the reason: events refused by a key's grain, batches for a pipeline the
-- silo does not run, batches skipped after a sequence gap timed out. Stream messages that exhausted their
-- delivery attempts or expired are in pipeline_stream_dead_letters (step 4); pipeline_all_dead_letters shows both.
CREATE TABLE pipeline_dead_letters (
    id             bigserial   PRIMARY KEY,
    pipeline       text        NOT NULL,
    key            text        NOT NULL,
    producer_id    uuid        NOT NULL,
    batch_sequence bigint      NOT NULL,
    event_index    integer     NOT NULL DEFAULT -1,
    reason         text        NOT NULL,
    detail         jsonb,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pipeline, key, producer_id, batch_sequence, event_index, reason)
);

-- The pipelines the silos run, so that output_values can be read without the silo's configuration.
CREATE TABLE pipeline_definitions (
    pipeline     text        PRIMARY KEY,
    output_names text[]      NOT NULL,
    definition   jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every dead letter in one place: the pipeline's own, and stream messages the stream provider gave up on (their
-- payload is a serialized batch; the silo's 'dead-letters' command decodes them).
CREATE VIEW pipeline_all_dead_letters AS
SELECT 'pipeline' AS source, pipeline, key, producer_id::text AS producer, batch_sequence, event_index, reason,
       detail::text AS detail, recorded_at
FROM pipeline_dead_letters
UNION ALL
SELECT 'stream', NULL, NULL, NULL, message_id, -1, reason,
       format('queue %s, %s lease(s), enqueued %s', queue_id, dequeued, created_on), dead_on
FROM orleans_stream_dead_letters;
