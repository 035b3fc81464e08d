-- Step 7: the gateway's request ids, shared by every gateway of the cluster.
--
-- A publish with a request_id is recorded here (per caller) with a hash of its content before anything is published,
-- and marked done once every event is stored. A retry through any gateway finds it: the same content is answered
-- without publishing again (or waits while the first is still publishing); different content under a used id is
-- refused. Rows older than the gateway's RequestIdRetention are deleted.

CREATE TABLE pipeline_request_ids (
    caller       text        NOT NULL,
    request_id   text        NOT NULL,
    content_hash bytea       NOT NULL,
    events       integer     NOT NULL,
    claimed_by   text        NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    PRIMARY KEY (caller, request_id)
);

CREATE INDEX pipeline_request_ids_by_age ON pipeline_request_ids (claimed_at);
