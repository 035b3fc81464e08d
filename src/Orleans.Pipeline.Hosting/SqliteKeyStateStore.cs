using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.Storage;

namespace Orleans.Pipeline.Hosting;

/// <summary>
/// Embedded mode's key state: write-behind into the SQLite file. A write is taken in memory at once (a newer write of
/// the same key replaces an older one not yet written) and a background writer stores what is pending in large
/// transactions, as fast as the file allows; a durable write (deactivation, shutdown) waits until its state is in the
/// file. Reads see pending writes first. So SQLite's commit rate bounds neither the grains nor the number of keys;
/// what a crash can lose is what was pending (README, "Guarantees of the embedded mode").
/// </summary>
public sealed class SqliteKeyStateStore : IKeyStateStore, IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly ConcurrentDictionary<(string Pipeline, string Key), Pending> _pending = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;
    private readonly GroupCommit<(string Pipeline, string Key), StoredKeyState?> _reads;
    private readonly int _maxGroup;
    private long _written;
    private static readonly KeyValuePair<string, object?> Store = new("store", "sqlite");
    private int _disposed;

    /// <param name="connectionString">The embedded database (<see cref="SqliteStateSchema.Ensure"/>).</param>
    /// <param name="maxGroup">Most rows per transaction.</param>
    public SqliteKeyStateStore(string connectionString, int maxGroup = 50_000)
    {
        _connectionString = connectionString;
        _maxGroup = maxGroup;
        _writer = Task.Factory.StartNew(WriteLoopAsync, TaskCreationOptions.LongRunning).Unwrap();
        _reads = new GroupCommit<(string, string), StoredKeyState?>(ReadGroup, maxGroup: 4_096, concurrency: 1);
    }

    /// <summary>States waiting to be written.</summary>
    public int PendingCount => _pending.Count;

    /// <summary>Rows written so far.</summary>
    public long Written => Interlocked.Read(ref _written);

    public Task<StoredKeyState?> ReadAsync(string pipeline, string key, CancellationToken cancellationToken = default)
    {
        if (_pending.TryGetValue((pipeline, key), out var pending)) return Task.FromResult<StoredKeyState?>(new StoredKeyState(pending.Payload, pending.Version));
        // Keys activating together (a partition item reaching thousands of new keys) are read in one go, on one
        // connection, off the grains' turns.
        return _reads.SubmitAsync((pipeline, key));
    }

    private Task<IReadOnlyList<GroupOutcome<StoredKeyState?>>> ReadGroup(IReadOnlyList<(string Pipeline, string Key)> keys, CancellationToken cancellationToken)
    {
        var outcomes = new GroupOutcome<StoredKeyState?>[keys.Count];
        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT payload, version FROM pipeline_key_state WHERE pipeline = $p AND key = $k";
        var p = command.Parameters.Add("$p", SqliteType.Text);
        var k = command.Parameters.Add("$k", SqliteType.Text);
        command.Prepare();
        for (var i = 0; i < keys.Count; i++)
        {
            // A write that raced ahead of this read (the key's state pending) is newer than the file.
            if (_pending.TryGetValue(keys[i], out var pending))
            {
                outcomes[i] = GroupOutcome<StoredKeyState?>.Ok(new StoredKeyState(pending.Payload, pending.Version));
                continue;
            }

            p.Value = keys[i].Pipeline;
            k.Value = keys[i].Key;
            using var reader = command.ExecuteReader();
            outcomes[i] = GroupOutcome<StoredKeyState?>.Ok(reader.Read() ? new StoredKeyState((byte[])reader[0], reader.GetInt64(1)) : null);
        }

        return Task.FromResult<IReadOnlyList<GroupOutcome<StoredKeyState?>>>(outcomes);
    }

    public Task<long> WriteAsync(KeyStateWrite write, CancellationToken cancellationToken = default)
    {
        var pending = new Pending(write.Payload, write.ExpectedVersion + 1, write.Durable ? new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) : null);
        // A newer state replaces one not yet written; whoever waited for the older one now waits for the newer.
        pending = _pending.AddOrUpdate((write.Pipeline, write.Key), pending, (_, older) => Replace(older, pending));
        if (_wake.CurrentCount == 0) _wake.Release();
        return pending.Durable is null ? Task.FromResult(pending.Version) : WaitAsync(pending);
    }

    private static Pending Replace(Pending older, Pending newer)
    {
        if (older.Durable is null) return newer;
        if (newer.Durable is null) return newer with { Durable = older.Durable };
        _ = newer.Durable.Task.ContinueWith(t => older.Durable.TrySetFromTask(t), TaskScheduler.Default);
        return newer;
    }

    private static async Task<long> WaitAsync(Pending pending)
    {
        await pending.Durable!.Task;
        return pending.Version;
    }

    /// <summary>
    /// Waits until everything written so far is in the file: every state pending now becomes a durable write (the
    /// same mechanism a deactivating key uses), and this waits for all of them.
    /// </summary>
    public async Task FlushAsync()
    {
        var waits = new List<Task>();
        foreach (var key in _pending.Keys)
        {
            var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            // A key written in the meantime is gone from the pending states: nothing left to wait for.
            while (_pending.TryGetValue(key, out var current))
            {
                var marked = Replace(current, current with { Durable = durable });
                if (!_pending.TryUpdate(key, marked, current)) continue;
                waits.Add(marked.Durable!.Task);
                break;
            }
        }

        if (waits.Count == 0) return;
        if (_wake.CurrentCount == 0) _wake.Release();
        await Task.WhenAll(waits);
    }

    private async Task WriteLoopAsync()
    {
        var group = new List<KeyValuePair<(string Pipeline, string Key), Pending>>(_maxGroup);
        while (true)
        {
            if (_pending.IsEmpty)
            {
                if (_stop.IsCancellationRequested) return;
                try
                {
                    await _wake.WaitAsync(TimeSpan.FromMilliseconds(200), _stop.Token);
                }
                catch (OperationCanceledException)
                {
                }

                continue;
            }

            group.Clear();
            foreach (var entry in _pending)
            {
                group.Add(entry);
                if (group.Count == _maxGroup) break;
            }

            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                Write(group);
                PipelineMeter.StateWriteDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, Store);
                PipelineMeter.StateWriteGroupSize.Record(group.Count, Store);
            }
            catch (Exception e)
            {
                foreach (var (_, pending) in group) pending.Durable?.TrySetException(e);
                foreach (var entry in group) _pending.TryRemove(entry);
                continue;
            }

            // A key written again meanwhile stays pending with its newer state.
            foreach (var entry in group)
            {
                _pending.TryRemove(entry);
                entry.Value.Durable?.TrySetResult();
            }

            Interlocked.Add(ref _written, group.Count);
        }
    }

    private void Write(List<KeyValuePair<(string Pipeline, string Key), Pending>> group)
    {
        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            INSERT INTO pipeline_key_state (pipeline, key, version, payload) VALUES ($p, $k, $v, $b)
            ON CONFLICT (pipeline, key) DO UPDATE SET version = excluded.version, payload = excluded.payload
            """;
        var p = command.Parameters.Add("$p", SqliteType.Text);
        var k = command.Parameters.Add("$k", SqliteType.Text);
        var v = command.Parameters.Add("$v", SqliteType.Integer);
        var b = command.Parameters.Add("$b", SqliteType.Blob);
        command.Prepare();
        foreach (var ((pipeline, key), pending) in group)
        {
            p.Value = pipeline;
            k.Value = key;
            v.Value = pending.Version;
            b.Value = pending.Payload;
            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <summary>Writes what is pending, then stops.</summary>
    public async ValueTask DisposeAsync()
    {
        // Registered under two service types, so disposed twice: once is enough.
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await FlushAsync();
        _stop.Cancel();
        await _writer;
        await _reads.DisposeAsync();
        _stop.Dispose();
    }

    private sealed record Pending(byte[] Payload, long Version, TaskCompletionSource? Durable);
}

internal static class TaskCompletionSourceExtensions
{
    public static void TrySetFromTask(this TaskCompletionSource target, Task source)
    {
        if (source.IsFaulted) target.TrySetException(source.Exception!.InnerExceptions);
        else if (source.IsCanceled) target.TrySetCanceled();
        else target.TrySetResult();
    }
}
