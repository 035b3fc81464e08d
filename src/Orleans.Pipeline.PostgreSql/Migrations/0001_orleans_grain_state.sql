-- Step 1: the query registry the Orleans ADO.NET providers read at start-up, and grain state.
--
-- Every provider loads its SQL from orleansquery (querykey, querytext); the text below is this project's own.
-- Grain state contract: each query gets @ServiceId, @GrainTypeString (the state's name), @GrainIdN0, @GrainIdN1,
-- @GrainIdExtensionString (the whole key of a string-keyed grain, else NULL), @GrainIdHash, @GrainTypeHash; writes
-- add @GrainStateVersion (NULL before the first write) and @PayloadBinary. A read returns PayloadBinary and Version;
-- a write or clear returns one NewGrainStateVersion different from the version given, and no row on a conflict.

CREATE TABLE orleansquery (
    querykey  varchar(64) PRIMARY KEY,
    querytext text        NOT NULL
);

CREATE TABLE pipeline_grain_state (
    service_id  text        NOT NULL,
    state_name  text        NOT NULL,
    n0          bigint      NOT NULL,
    n1          bigint      NOT NULL,
    key_ext     text        NOT NULL,
    payload     bytea,
    version     integer     NOT NULL,
    modified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service_id, state_name, key_ext, n0, n1)
);

INSERT INTO orleansquery (querykey, querytext) VALUES
('ReadFromStorageKey', $q$
SELECT payload AS "PayloadBinary", version AS "Version"
FROM pipeline_grain_state
WHERE service_id = @ServiceId AND state_name = @GrainTypeString
  AND key_ext = coalesce(@GrainIdExtensionString, '') AND n0 = @GrainIdN0 AND n1 = @GrainIdN1
$q$),
('WriteToStorageKey', $q$
WITH updated AS (
    UPDATE pipeline_grain_state
    SET payload = @PayloadBinary, version = version + 1, modified_at = now()
    WHERE service_id = @ServiceId AND state_name = @GrainTypeString
      AND key_ext = coalesce(@GrainIdExtensionString, '') AND n0 = @GrainIdN0 AND n1 = @GrainIdN1
      AND version = @GrainStateVersion::integer
    RETURNING version),
inserted AS (
    INSERT INTO pipeline_grain_state (service_id, state_name, n0, n1, key_ext, payload, version)
    SELECT @ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, coalesce(@GrainIdExtensionString, ''), @PayloadBinary, 1
    WHERE @GrainStateVersion::integer IS NULL
    ON CONFLICT DO NOTHING
    RETURNING version)
SELECT version AS "NewGrainStateVersion" FROM updated
UNION ALL
SELECT version FROM inserted
$q$),
('ClearStorageKey', $q$
UPDATE pipeline_grain_state
SET payload = NULL, version = version + 1, modified_at = now()
WHERE service_id = @ServiceId AND state_name = @GrainTypeString
  AND key_ext = coalesce(@GrainIdExtensionString, '') AND n0 = @GrainIdN0 AND n1 = @GrainIdN1
  AND version = @GrainStateVersion::integer
RETURNING version AS "NewGrainStateVersion"
$q$),
('DeleteStorageKey', $q$
DELETE FROM pipeline_grain_state
WHERE service_id = @ServiceId AND state_name = @GrainTypeString
  AND key_ext = coalesce(@GrainIdExtensionString, '') AND n0 = @GrainIdN0 AND n1 = @GrainIdN1
  AND version = @GrainStateVersion::integer
RETURNING version + 1 AS "NewGrainStateVersion"
$q$);
