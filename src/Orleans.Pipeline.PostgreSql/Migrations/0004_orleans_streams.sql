-- Step 4: durable stream queues, for the Orleans ADO.NET stream provider.
--
-- Contract: a queue is (@ServiceId, @ProviderId, @QueueId); a message is one serialized batch container (Payload)
-- with an id that grows in insert order. Dequeue leases up to @MaxCount visible messages for @VisibilityTimeout
-- seconds, counting each lease in Dequeued, and returns them; a message is confirmed (deleted) with the Dequeued
-- value of its lease as receipt ("id:receipt|…"), or released (visible at once) with the receipt negated, when a
-- silo hands its queues over. A failed delivery makes the message visible again, or dead once it has had
-- @MaxAttempts leases. Messages past their expiry or attempts move to orleans_stream_dead_letters with the reason;
-- the dequeue does that housekeeping itself, at most once per @EvictionInterval per queue across the cluster.
-- Timeouts arrive in whole seconds.

CREATE SEQUENCE orleans_stream_message_ids;

CREATE TABLE orleans_stream_messages (
    service_id  text        NOT NULL,
    provider_id text        NOT NULL,
    queue_id    text        NOT NULL,
    message_id  bigint      NOT NULL DEFAULT nextval('orleans_stream_message_ids'),
    dequeued    integer     NOT NULL DEFAULT 0,
    visible_on  timestamptz NOT NULL,
    expires_on  timestamptz NOT NULL,
    created_on  timestamptz NOT NULL,
    modified_on timestamptz NOT NULL,
    payload     bytea       NOT NULL,
    PRIMARY KEY (service_id, provider_id, queue_id, message_id)
);

CREATE TABLE orleans_stream_dead_letters (
    service_id  text        NOT NULL,
    provider_id text        NOT NULL,
    queue_id    text        NOT NULL,
    message_id  bigint      NOT NULL,
    dequeued    integer     NOT NULL,
    reason      text        NOT NULL,
    visible_on  timestamptz NOT NULL,
    expires_on  timestamptz NOT NULL,
    created_on  timestamptz NOT NULL,
    modified_on timestamptz NOT NULL,
    dead_on     timestamptz NOT NULL,
    remove_on   timestamptz NOT NULL,
    payload     bytea,
    PRIMARY KEY (service_id, provider_id, queue_id, message_id)
);

CREATE TABLE orleans_stream_housekeeping (
    service_id  text        NOT NULL,
    provider_id text        NOT NULL,
    queue_id    text        NOT NULL,
    due_on      timestamptz NOT NULL,
    PRIMARY KEY (service_id, provider_id, queue_id)
);

-- Moves up to p_batch messages whose lease is over and which expired or used up their attempts to the dead letters.
CREATE FUNCTION orleans_stream_evict(p_service text, p_provider text, p_queue text, p_batch integer, p_max_attempts integer, p_removal integer)
RETURNS integer LANGUAGE sql AS $f$
    WITH doomed AS (
        SELECT message_id FROM orleans_stream_messages
        WHERE service_id = p_service AND provider_id = p_provider AND queue_id = p_queue
          AND visible_on <= now() AND (dequeued >= p_max_attempts OR expires_on <= now())
        ORDER BY message_id LIMIT p_batch
        FOR UPDATE SKIP LOCKED),
    moved AS (
        DELETE FROM orleans_stream_messages m USING doomed d
        WHERE m.service_id = p_service AND m.provider_id = p_provider AND m.queue_id = p_queue AND m.message_id = d.message_id
        RETURNING m.*),
    buried AS (
        INSERT INTO orleans_stream_dead_letters
            (service_id, provider_id, queue_id, message_id, dequeued, reason, visible_on, expires_on, created_on, modified_on, dead_on, remove_on, payload)
        SELECT service_id, provider_id, queue_id, message_id, dequeued,
               CASE WHEN expires_on <= now() THEN 'expired' ELSE 'max-attempts' END,
               visible_on, expires_on, created_on, modified_on, now(), now() + make_interval(secs => p_removal), payload
        FROM moved
        ON CONFLICT DO NOTHING
        RETURNING 1)
    SELECT count(*)::integer FROM buried
$f$;

-- Deletes up to p_batch dead letters whose retention is over.
CREATE FUNCTION orleans_stream_evict_dead_letters(p_service text, p_provider text, p_queue text, p_batch integer)
RETURNS integer LANGUAGE sql AS $f$
    WITH expired AS (
        SELECT message_id FROM orleans_stream_dead_letters
        WHERE service_id = p_service AND provider_id = p_provider AND queue_id = p_queue AND remove_on <= now()
        ORDER BY message_id LIMIT p_batch),
    removed AS (
        DELETE FROM orleans_stream_dead_letters l USING expired e
        WHERE l.service_id = p_service AND l.provider_id = p_provider AND l.queue_id = p_queue AND l.message_id = e.message_id
        RETURNING 1)
    SELECT count(*)::integer FROM removed
$f$;

CREATE FUNCTION orleans_stream_dequeue(
    p_service text, p_provider text, p_queue text, p_max integer, p_max_attempts integer,
    p_visibility integer, p_removal integer, p_housekeeping_interval integer, p_housekeeping_batch integer)
RETURNS TABLE ("ServiceId" text, "ProviderId" text, "QueueId" text, "MessageId" bigint, "Dequeued" integer,
               "VisibleOn" timestamptz, "ExpiresOn" timestamptz, "CreatedOn" timestamptz, "ModifiedOn" timestamptz, "Payload" bytea)
LANGUAGE plpgsql AS $f$
BEGIN
    -- Housekeeping at most once per interval per queue: whoever moves due_on forward does it.
    INSERT INTO orleans_stream_housekeeping (service_id, provider_id, queue_id, due_on)
    VALUES (p_service, p_provider, p_queue, '-infinity') ON CONFLICT DO NOTHING;
    UPDATE orleans_stream_housekeeping SET due_on = now() + make_interval(secs => p_housekeeping_interval)
    WHERE service_id = p_service AND provider_id = p_provider AND queue_id = p_queue AND due_on <= now();
    IF FOUND THEN
        PERFORM orleans_stream_evict(p_service, p_provider, p_queue, p_housekeeping_batch, p_max_attempts, p_removal);
        PERFORM orleans_stream_evict_dead_letters(p_service, p_provider, p_queue, p_housekeeping_batch);
    END IF;

    RETURN QUERY
    WITH leased AS (
        SELECT message_id FROM orleans_stream_messages
        WHERE service_id = p_service AND provider_id = p_provider AND queue_id = p_queue
          AND dequeued < p_max_attempts AND visible_on <= now() AND expires_on > now()
        ORDER BY message_id LIMIT p_max
        FOR UPDATE)
    UPDATE orleans_stream_messages m
    SET dequeued = m.dequeued + 1, visible_on = now() + make_interval(secs => p_visibility), modified_on = now()
    FROM leased l
    WHERE m.service_id = p_service AND m.provider_id = p_provider AND m.queue_id = p_queue AND m.message_id = l.message_id
    RETURNING m.service_id, m.provider_id, m.queue_id, m.message_id, m.dequeued,
              m.visible_on, m.expires_on, m.created_on, m.modified_on, m.payload;
END
$f$;

-- Receipts "id:n|id:n|…": n > 0 confirms (deletes) the lease n of message id; n < 0 releases lease −n (visible
-- now). A receipt that no longer matches (the message was leased again) changes nothing. The minus sign may come as
-- U+2212 (cultures that format negative numbers so).
CREATE FUNCTION orleans_stream_confirm(p_service text, p_provider text, p_queue text, p_items text)
RETURNS TABLE ("ServiceId" text, "ProviderId" text, "QueueId" text, "MessageId" bigint)
LANGUAGE sql AS $f$
    WITH receipts AS (
        SELECT split_part(item, ':', 1)::bigint AS message_id,
               replace(split_part(item, ':', 2), U&'\2212', '-')::integer AS receipt
        FROM unnest(string_to_array(p_items, '|')) AS item
        WHERE item <> ''),
    locked AS (
        SELECT m.message_id, r.receipt
        FROM orleans_stream_messages m
        JOIN receipts r ON r.message_id = m.message_id AND m.dequeued = abs(r.receipt)
        WHERE m.service_id = p_service AND m.provider_id = p_provider AND m.queue_id = p_queue
        ORDER BY m.message_id
        FOR UPDATE OF m),
    confirmed AS (
        DELETE FROM orleans_stream_messages m USING locked l
        WHERE m.service_id = p_service AND m.provider_id = p_provider AND m.queue_id = p_queue
          AND m.message_id = l.message_id AND l.receipt > 0
        RETURNING m.message_id),
    released AS (
        UPDATE orleans_stream_messages m SET visible_on = now(), modified_on = now()
        FROM locked l
        WHERE m.service_id = p_service AND m.provider_id = p_provider AND m.queue_id = p_queue
          AND m.message_id = l.message_id AND l.receipt < 0
        RETURNING m.message_id)
    SELECT p_service, p_provider, p_queue, message_id FROM confirmed
    UNION ALL
    SELECT p_service, p_provider, p_queue, message_id FROM released
$f$;

-- A delivery failed: try again at once, or bury the message when it has had its attempts.
CREATE FUNCTION orleans_stream_fail(p_service text, p_provider text, p_queue text, p_message bigint, p_max_attempts integer, p_removal integer)
RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    UPDATE orleans_stream_messages SET visible_on = now(), modified_on = now()
    WHERE service_id = p_service AND provider_id = p_provider AND queue_id = p_queue AND message_id = p_message
      AND dequeued < p_max_attempts;
    IF NOT FOUND THEN
        WITH moved AS (
            DELETE FROM orleans_stream_messages
            WHERE service_id = p_service AND provider_id = p_provider AND queue_id = p_queue AND message_id = p_message
            RETURNING *)
        INSERT INTO orleans_stream_dead_letters
            (service_id, provider_id, queue_id, message_id, dequeued, reason, visible_on, expires_on, created_on, modified_on, dead_on, remove_on, payload)
        SELECT service_id, provider_id, queue_id, message_id, dequeued, 'delivery-failed',
               visible_on, expires_on, created_on, modified_on, now(), now() + make_interval(secs => p_removal), payload
        FROM moved
        ON CONFLICT DO NOTHING;
    END IF;
END
$f$;

INSERT INTO orleansquery (querykey, querytext) VALUES
('QueueStreamMessageKey', $q$
INSERT INTO orleans_stream_messages (service_id, provider_id, queue_id, visible_on, expires_on, created_on, modified_on, payload)
VALUES (@ServiceId, @ProviderId, @QueueId, now(), now() + make_interval(secs => @ExpiryTimeout), now(), now(), @Payload)
RETURNING service_id AS "ServiceId", provider_id AS "ProviderId", queue_id AS "QueueId", message_id AS "MessageId"
$q$),
('GetStreamMessagesKey', $q$
SELECT * FROM orleans_stream_dequeue(@ServiceId, @ProviderId, @QueueId, @MaxCount, @MaxAttempts,
                                     @VisibilityTimeout, @RemovalTimeout, @EvictionInterval, @EvictionBatchSize)
$q$),
('ConfirmStreamMessagesKey', $q$
SELECT * FROM orleans_stream_confirm(@ServiceId, @ProviderId, @QueueId, @Items)
$q$),
('FailStreamMessageKey', $q$
SELECT orleans_stream_fail(@ServiceId, @ProviderId, @QueueId, @MessageId, @MaxAttempts, @RemovalTimeout)
$q$),
('EvictStreamMessagesKey', $q$
SELECT orleans_stream_evict(@ServiceId, @ProviderId, @QueueId, @MaxCount, @MaxAttempts, @RemovalTimeout)
$q$),
('EvictStreamDeadLettersKey', $q$
SELECT orleans_stream_evict_dead_letters(@ServiceId, @ProviderId, @QueueId, @MaxCount)
$q$);
