using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Gateway;

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
