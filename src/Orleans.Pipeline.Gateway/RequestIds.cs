using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Gateway;

/// <summary>What the ledger knows of a request id when a request claims it.</summary>
internal enum ClaimOutcome
{
    /// <summary>New: this request publishes.</summary>
    Claimed,

    /// <summary>The same content was published and stored: answer without publishing.</summary>
    Done,

    /// <summary>The same content is being published (by another gateway, or a gateway that died): wait, or take it over.</summary>
    InProgress,

    /// <summary>The id was used for different content.</summary>
    Conflict,
}

/// <summary>
/// Request ids shared by the cluster's gateways (PostgreSQL mode): a publish claims its id with a hash of its
/// content before anything is published, and marks it done once every event is stored.
/// </summary>
internal interface ISharedRequestIds
{
    /// <summary>Claims the id for this request, published under <paramref name="origin"/>.</summary>
    Task<ClaimOutcome> ClaimAsync(string caller, string requestId, byte[] hash, int events, RequestTag origin, CancellationToken cancellationToken);

    /// <summary>
    /// Takes over a claim whose gateway has not finished it for <paramref name="lease"/> (it died or hangs): null when
    /// not taken; otherwise the tag the request was first published under (null inside when unknown).
    /// </summary>
    Task<TakeOver?> TakeOverAsync(string caller, string requestId, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Marks the request stored; true when another gateway took it over meanwhile (its copy may still be on its way).</summary>
    Task<bool> CompleteAsync(string caller, string requestId, CancellationToken cancellationToken);

    /// <summary>Frees an id whose request was refused before anything was published.</summary>
    Task ReleaseAsync(string caller, string requestId, CancellationToken cancellationToken);
}

/// <summary>A claim taken over, with the tag its request was first published under (null for a claim recorded without one).</summary>
internal sealed record TakeOver(RequestTag? Origin);

/// <summary>The content hash a request id is bound to: pipeline and every event (key, time, fields sorted by name).</summary>
internal static class RequestContent
{
    public static byte[] Hash(V1.PublishRequest request)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var number = new byte[8];
        void Text(string s)
        {
            BinaryPrimitives.WriteInt32LittleEndian(number, s.Length);
            hash.AppendData(number, 0, 4);
            hash.AppendData(Encoding.UTF8.GetBytes(s));
        }

        void Long(long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(number, value);
            hash.AppendData(number);
        }

        Text(request.Pipeline);
        Long(request.Events.Count);
        foreach (var e in request.Events)
        {
            Text(e.Key);
            Long(e.TimeMs);
            Long(e.Fields.Count);
            foreach (var (name, value) in e.Fields.OrderBy(f => f.Key, StringComparer.Ordinal))
            {
                Text(name);
                Long(BitConverter.DoubleToInt64Bits(value));
            }
        }

        return hash.GetHashAndReset();
    }
}

/// <summary>
/// This gateway's recent request ids, each bound to its content hash, kept for <c>RequestIdRetention</c> (and at most
/// <c>MaxRememberedRequestIds</c>): a retry with the same id and content waits for the first publish instead of
/// publishing again; the same id with different content is refused.
/// </summary>
internal sealed class RecentRequests(TimeSpan retention, int capacity, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Entry> _byId = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Id, long At)> _order = new();

    public sealed record Entry(byte[] Hash, Task Publish);

    /// <summary>Forgets a publish that was refused before it published anything.</summary>
    public void Forget(string id, Entry entry) => _byId.TryRemove(new KeyValuePair<string, Entry>(id, entry));

    /// <summary>Remembers the publish, or returns the entry of an earlier request with the same id (whose hash may differ).</summary>
    public Entry Remember(string id, Entry entry)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var cutoff = now - (long)retention.TotalMilliseconds;
        // The oldest go first; an entry still publishing when it ages out is forgotten too (as before request ids were
        // bound to content): keeping it would leave it in the map for good, since it is no longer in the queue.
        while (_order.TryPeek(out var oldest) && (oldest.At < cutoff || _order.Count > capacity) && _order.TryDequeue(out oldest))
            _byId.TryRemove(oldest.Id, out _);

        var kept = _byId.GetOrAdd(id, entry);
        if (ReferenceEquals(kept, entry)) _order.Enqueue((id, now));
        return kept;
    }
}

/// <summary>The cluster's shared request ids, in <c>pipeline_request_ids</c>.</summary>
internal sealed class PostgresRequestIds(NpgsqlDataSource dataSource, string gateway, TimeSpan retention) : ISharedRequestIds
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
