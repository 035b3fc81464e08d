using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Gateway;

/// <summary>
/// The content hash a request id is bound to: pipeline and every event (key, time, fields sorted by name), the same
/// whether the events came one message each or in columns.
/// </summary>
internal static class RequestContent
{
    public static byte[] Hash(V1.PublishRequest request)
    {
        var content = new Content();
        content.Text(request.Pipeline);
        if (request.Columns is { } columns)
        {
            var fields = columns.Fields.OrderBy(f => f.Name, StringComparer.Ordinal).ToArray();
            content.Long(columns.Keys.Count);
            for (var i = 0; i < columns.Keys.Count; i++)
            {
                content.Text(columns.Keys[i]);
                content.Long(i < columns.TimeMs.Count ? columns.TimeMs[i] : 0);
                content.Long(fields.Length);
                foreach (var field in fields)
                {
                    content.Text(field.Name);
                    content.Long(BitConverter.DoubleToInt64Bits(i < field.Values.Count ? field.Values[i] : double.NaN));
                }
            }
        }
        else
        {
            content.Long(request.Events.Count);
            foreach (var e in request.Events)
            {
                content.Text(e.Key);
                content.Long(e.TimeMs);
                content.Long(e.Fields.Count);
                foreach (var (name, value) in e.Fields.OrderBy(f => f.Key, StringComparer.Ordinal))
                {
                    content.Text(name);
                    content.Long(BitConverter.DoubleToInt64Bits(value));
                }
            }
        }

        return content.Hash();
    }

    /// <summary>The canonical bytes, written into one growing buffer and hashed once.</summary>
    private sealed class Content
    {
        private readonly ArrayBufferWriter<byte> _bytes = new(4_096);

        public void Text(string s)
        {
            Long32(s.Length);
            var span = _bytes.GetSpan(Encoding.UTF8.GetMaxByteCount(s.Length));
            _bytes.Advance(Encoding.UTF8.GetBytes(s, span));
        }

        public void Long(long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(_bytes.GetSpan(8), value);
            _bytes.Advance(8);
        }

        private void Long32(int value)
        {
            BinaryPrimitives.WriteInt32LittleEndian(_bytes.GetSpan(4), value);
            _bytes.Advance(4);
        }

        public byte[] Hash() => SHA256.HashData(_bytes.WrittenSpan);
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
