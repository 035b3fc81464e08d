using Npgsql;
using NpgsqlTypes;
using Orleans.Pipeline.Storage;

namespace Orleans.Pipeline.PostgreSql;

/// <summary>
/// Cluster mode's key state: group-committed. The writes of all keys that arrive while a commit runs go into the
/// next one: one multi-row upsert of their states (each only if its stored version is the one the grain read), and
/// in the same transaction their results, late events and dead letters. Each grain's write completes when its row is
/// committed, so write-through exactly-once holds at the cost of one transaction per group instead of per key.
/// Reads of keys activating together are grouped the same way (one query per group).
/// </summary>
public sealed class PostgresKeyStateStore : IKeyStateStore, IAsyncDisposable
{
    private const string Upsert = """
        INSERT INTO pipeline_key_state AS s (pipeline, key, version, payload)
        SELECT t.p, t.k, t.v + 1, t.b FROM unnest(@pipelines, @keys, @versions, @payloads) AS t(p, k, v, b)
        ON CONFLICT (pipeline, key) DO UPDATE SET version = excluded.version, payload = excluded.payload, updated_at = now()
        WHERE s.version = excluded.version - 1
        RETURNING s.pipeline, s.key
        """;

    private const string Select = """
        SELECT s.pipeline, s.key, s.payload, s.version
        FROM unnest(@pipelines, @keys) AS t(p, k) JOIN pipeline_key_state s ON s.pipeline = t.p AND s.key = t.k
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresResultSink _results;
    private readonly GroupCommit<KeyStateWrite, long> _writes;
    private readonly GroupCommit<(string Pipeline, string Key), StoredKeyState?> _reads;

    public PostgresKeyStateStore(NpgsqlDataSource dataSource, PostgresResultSink results, int maxGroup = 4096, int concurrency = 2)
    {
        _dataSource = dataSource;
        _results = results;
        _writes = new GroupCommit<KeyStateWrite, long>(CommitAsync, maxGroup, concurrency, metricsName: "postgresql");
        _reads = new GroupCommit<(string, string), StoredKeyState?>(ReadGroupAsync, maxGroup, concurrency: 1);
    }

    /// <summary>Write groups committed and writes in them.</summary>
    public (long Groups, long Requests) WriteCounts => _writes.Counts;

    public Task<StoredKeyState?> ReadAsync(string pipeline, string key, CancellationToken cancellationToken = default) =>
        _reads.SubmitAsync((pipeline, key));

    public Task<long> WriteAsync(KeyStateWrite write, CancellationToken cancellationToken = default) =>
        _writes.SubmitAsync(write);

    private async Task<IReadOnlyList<GroupOutcome<StoredKeyState?>>> ReadGroupAsync(IReadOnlyList<(string Pipeline, string Key)> keys, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(Select);
        command.Parameters.AddWithValue("pipelines", keys.Select(k => k.Pipeline).ToArray());
        command.Parameters.AddWithValue("keys", keys.Select(k => k.Key).ToArray());
        var found = new Dictionary<(string, string), StoredKeyState>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
                found[(reader.GetString(0), reader.GetString(1))] = new StoredKeyState((byte[])reader[2], reader.GetInt64(3));
        }

        return keys.Select(k => GroupOutcome<StoredKeyState?>.Ok(found.GetValueOrDefault(k))).ToArray();
    }

    private async Task<IReadOnlyList<GroupOutcome<long>>> CommitAsync(IReadOnlyList<KeyStateWrite> writes, CancellationToken cancellationToken)
    {
        var outcomes = new GroupOutcome<long>[writes.Count];
        var live = Enumerable.Range(0, writes.Count).ToList();
        while (live.Count > 0)
        {
            await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var stored = new HashSet<(string, string)>();
            await using (var upsert = new NpgsqlCommand(Upsert, connection, transaction))
            {
                upsert.Parameters.AddWithValue("pipelines", live.Select(i => writes[i].Pipeline).ToArray());
                upsert.Parameters.AddWithValue("keys", live.Select(i => writes[i].Key).ToArray());
                upsert.Parameters.AddWithValue("versions", live.Select(i => writes[i].ExpectedVersion).ToArray());
                upsert.Parameters.Add(new NpgsqlParameter("payloads", NpgsqlDbType.Array | NpgsqlDbType.Bytea) { Value = live.Select(i => writes[i].Payload).ToArray() });
                await using var reader = await upsert.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken)) stored.Add((reader.GetString(0), reader.GetString(1)));
            }

            if (stored.Count < live.Count)
            {
                // Another activation wrote some of these keys: refuse those, and commit the rest without them (their
                // results must not land either, so the whole group is rolled back and redone).
                await transaction.RollbackAsync(cancellationToken);
                foreach (var i in live.Where(i => !stored.Contains((writes[i].Pipeline, writes[i].Key))))
                    outcomes[i] = GroupOutcome<long>.Failed(new KeyStateConflictException(writes[i].Pipeline, writes[i].Key, writes[i].ExpectedVersion));
                live = live.Where(i => stored.Contains((writes[i].Pipeline, writes[i].Key))).ToList();
                continue;
            }

            var outputs = live.Select(i => writes[i].Output).OfType<SinkWrite>().Where(o => !o.IsEmpty).ToList();
            if (outputs.Count > 0)
            {
                await using var batch = new NpgsqlBatch(connection, transaction);
                _results.AddCommands(batch, outputs);
                await batch.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            foreach (var i in live) outcomes[i] = GroupOutcome<long>.Ok(writes[i].ExpectedVersion + 1);
            break;
        }

        return outcomes;
    }

    public async ValueTask DisposeAsync()
    {
        await _writes.DisposeAsync();
        await _reads.DisposeAsync();
    }
}
