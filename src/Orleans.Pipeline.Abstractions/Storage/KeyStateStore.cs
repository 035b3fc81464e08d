namespace Orleans.Pipeline.Storage;

/// <summary>
/// Where key grains keep their state, and in cluster mode their results too. Implementations coalesce the writes of
/// many keys that arrive together into one transaction (group commit): a silo applying a partition item touches
/// thousands of keys at once, and one transaction per key would bound throughput at the database's commit rate.
/// </summary>
public interface IKeyStateStore
{
    /// <summary>The key's stored state, or null when it has none.</summary>
    Task<StoredKeyState?> ReadAsync(string pipeline, string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores the key's state and (where the store keeps results) the step's output, atomically, and returns the new
    /// version. Throws <see cref="KeyStateConflictException"/> when the stored version is not
    /// <see cref="KeyStateWrite.ExpectedVersion"/> (another activation wrote), and any other exception when nothing
    /// was stored. A write-behind store (embedded mode) may return before the state is durable unless
    /// <see cref="KeyStateWrite.Durable"/> is set; it then reads its own pending writes back.
    /// </summary>
    Task<long> WriteAsync(KeyStateWrite write, CancellationToken cancellationToken = default);
}

/// <summary>A key's stored state and its version (0 when nothing was ever stored).</summary>
public sealed record StoredKeyState(byte[] Payload, long Version);

/// <summary>One key's write: its serialized state, the version it was read at, and what the step emitted.</summary>
public sealed record KeyStateWrite(string Pipeline, string Key, byte[] Payload, long ExpectedVersion, SinkWrite? Output, bool Durable = false);

/// <summary>The stored state of a key is newer than the one its grain holds: another activation wrote it.</summary>
public sealed class KeyStateConflictException(string pipeline, string key, long expected)
    : Exception($"pipeline '{pipeline}', key '{key}': stored state is not at version {expected}; another activation wrote it");
