-- Step 8: a request id remembers the tag its first gateway published the request under.
--
-- A gateway that dies part way through a request may have stored some partitions' share of it. The gateway that
-- takes the request over publishes it again under the first gateway's tag (origin_producer, origin_tag), and every
-- partition applies the request's events once, whichever copy brings them. taken_over tells the first gateway, if it
-- was only slow, to keep its tag open a while longer: the second copy may still be on its way.

ALTER TABLE pipeline_request_ids
    ADD COLUMN origin_producer uuid,
    ADD COLUMN origin_tag      bigint,
    ADD COLUMN taken_over      boolean NOT NULL DEFAULT false;
