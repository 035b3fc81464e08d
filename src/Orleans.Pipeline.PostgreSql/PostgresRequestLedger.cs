using Npgsql;
using Orleans.Pipeline.Storage;

namespace Orleans.Pipeline.PostgreSql;

/// <summary>
/// The cluster's shared request ids, in <c>pipeline_request_ids</c>. <paramref name="gateway"/> names this gateway in
/// its claims; ids done longer than <paramref name="retention"/> ago are deleted.
/// </summary>
public sealed class PostgresRequestLedger(NpgsqlDataSource dataSource, string gateway, TimeSpan retention) : IRequestLedger
{
    private long _lastPurge;

    public async Task<ClaimOutcome> ClaimAsync(string caller, string requestId, byte[] hash, int events, RequestTag origin, CancellationToken cancellationToken)
    {
        await PurgeAsync(cancellationToken);
        await using var command = dataSource.CreateCommand("""
            WITH claimed AS (
                INSERT INTO pipeline_request_ids (caller, request_id, content_hash, events, claimed_by, origin_producer, origin_tag)
                VALUES (@caller, @id, @hash, @events, @gateway, @producer, @tag)
                ON CONFLICT (caller, request_id) DO NOTHING
                RETURNING true AS mine)
            SELECT true, true, true FROM claimed
            UNION ALL
            SELECT false, content_hash = @hash, done_at IS NOT NULL FROM pipeline_request_ids
            WHERE caller = @caller AND request_id = @id AND NOT EXISTS (SELECT 1 FROM claimed)
            """);
        command.Parameters.AddWithValue("caller", caller);
        command.Parameters.AddWithValue("id", requestId);
        command.Parameters.AddWithValue("hash", hash);
        command.Parameters.AddWithValue("events", events);
        command.Parameters.AddWithValue("gateway", gateway);
        command.Parameters.AddWithValue("producer", origin.Producer);
        command.Parameters.AddWithValue("tag", origin.Tag);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken)) return ClaimOutcome.InProgress; // released between the two reads: ask again
        if (reader.GetBoolean(0)) return ClaimOutcome.Claimed;
        if (!reader.GetBoolean(1)) return ClaimOutcome.Conflict;
        return reader.GetBoolean(2) ? ClaimOutcome.Done : ClaimOutcome.InProgress;
    }

    public async Task<TakeOver?> TakeOverAsync(string caller, string requestId, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE pipeline_request_ids SET claimed_by = @gateway, claimed_at = now(), taken_over = true
            WHERE caller = @caller AND request_id = @id AND done_at IS NULL AND claimed_at < now() - @lease
            RETURNING origin_producer, origin_tag
            """);
        command.Parameters.AddWithValue("caller", caller);
        command.Parameters.AddWithValue("id", requestId);
        command.Parameters.AddWithValue("gateway", gateway);
        command.Parameters.AddWithValue("lease", lease);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken)) return null;
        return new TakeOver(reader.IsDBNull(0) || reader.IsDBNull(1) ? null : new RequestTag(reader.GetGuid(0), reader.GetInt64(1)));
    }

    public async Task<bool> CompleteAsync(string caller, string requestId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("UPDATE pipeline_request_ids SET done_at = coalesce(done_at, now()) WHERE caller = @caller AND request_id = @id RETURNING taken_over");
        command.Parameters.AddWithValue("caller", caller);
        command.Parameters.AddWithValue("id", requestId);
        // A row purged meanwhile cannot be taken over any more: nothing to keep open for.
        return await command.ExecuteScalarAsync(cancellationToken) is true;
    }

    public async Task ReleaseAsync(string caller, string requestId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM pipeline_request_ids WHERE caller = @caller AND request_id = @id AND done_at IS NULL AND claimed_by = @gateway");
        command.Parameters.AddWithValue("caller", caller);
        command.Parameters.AddWithValue("id", requestId);
        command.Parameters.AddWithValue("gateway", gateway);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Deletes ids older than the retention, at most once a minute.</summary>
    private async Task PurgeAsync(CancellationToken cancellationToken)
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastPurge);
        if (last != 0 && now - last < 60_000 || Interlocked.CompareExchange(ref _lastPurge, now, last) != last) return;
        await using var command = dataSource.CreateCommand("DELETE FROM pipeline_request_ids WHERE claimed_at < now() - @retention AND done_at IS NOT NULL");
        command.Parameters.AddWithValue("retention", retention);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
