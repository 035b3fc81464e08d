using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Orleans.Pipeline.Grains;

/// <summary>How much of the live results a silo keeps for subscribers that fell behind.</summary>
public sealed class LiveResultsOptions
{
    /// <summary>Key result batches each pipeline's recent-results log holds (the latest ones).</summary>
    public int RecentResults { get; set; } = 262_144;
}

/// <summary>
/// The silo's publisher of the live results feed. Key grains and partitions append what they fired to the
/// pipeline's <see cref="RecentResultsLog"/>, which numbers it; every <see cref="Interval"/> the silo sends what is
/// new as one <see cref="ResultFeed"/> message per pipeline (at most <see cref="MaxBatchesPerMessage"/> keys'
/// results each), so the feed's message rate grows neither with the number of keys nor with keys whose windows close
/// on their own timers. Memory is bounded by the log. When the feed falls behind by more than the log holds, the
/// oldest results are overwritten before they are sent: they are counted and logged, and subscribers see the skipped
/// positions (and read back from the log what it still holds), so nothing is dropped without a word. The key's
/// state, and in cluster mode the results table, remain the record.
/// </summary>
public sealed partial class LiveResults : IAsyncDisposable, ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>How often the feed is sent.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    /// <summary>Most keys' results per message (the feed's transport limits message size).</summary>
    public const int MaxBatchesPerMessage = 1024;

    private readonly ConcurrentDictionary<string, RecentResultsLog> _logs = new(StringComparer.Ordinal);
    private readonly Func<string, RecentResultsLog> _newLog;
    private readonly IServiceProvider _services;
    private readonly ILogger<LiveResults> _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _notSent;
    private int _disposed;

    public LiveResults(IServiceProvider services, ILogger<LiveResults> logger, LiveResultsOptions? options = null)
    {
        _services = services;
        _logger = logger;
        var capacity = (options ?? new LiveResultsOptions()).RecentResults;
        _newLog = _ => new RecentResultsLog(capacity);
        Origin = services.GetService<ILocalSiloDetails>()?.SiloAddress.ToParsableString() ?? Guid.NewGuid().ToString("N");
        _loop = Task.Run(RunAsync);
    }

    /// <summary>This silo's name in the feed: its address and generation.</summary>
    public string Origin { get; }

    /// <summary>Sends what is queued and stops while the silo still runs its streams (before grains are deactivated at shutdown).</summary>
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(LiveResults), ServiceLifecycleStage.Active, _ => Task.CompletedTask, _ => DisposeAsync().AsTask());

    /// <summary>Results overwritten in the log before the feed sent them, so far.</summary>
    public long NotSent => Interlocked.Read(ref _notSent);

    /// <summary>Appends what one key fired to its pipeline's log, for the next message.</summary>
    public void Add(ResultBatch batch) => _logs.GetOrAdd(batch.Pipeline, _newLog).Append(batch);

    /// <summary>Up to <paramref name="max"/> of the pipeline's recent batches after <paramref name="after"/>.</summary>
    public ResultLogPage Read(string pipeline, long after, int max)
    {
        var (first, batches, oldest, latest) = _logs.GetOrAdd(pipeline, _newLog).Read(after, max);
        return new ResultLogPage(Origin, oldest, latest, first, batches);
    }

    /// <summary>Completes when the pipeline's log holds a position after <paramref name="after"/>, or after <paramref name="timeout"/>.</summary>
    public async Task WaitAsync(string pipeline, long after, TimeSpan timeout)
    {
        try
        {
            await _logs.GetOrAdd(pipeline, _newLog).WhenAfter(after).WaitAsync(timeout, _stop.Token);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
        }
    }

    private async Task RunAsync()
    {
        long reported = 0;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, _stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            await SendAsync();
            var notSent = NotSent;
            if (notSent > reported)
            {
                LogNotSent(notSent - reported, notSent);
                reported = notSent;
            }
        }
    }

    private async Task SendAsync()
    {
        foreach (var (pipeline, log) in _logs)
        {
            log.Signal();
            while (true)
            {
                var (first, batches, skipped) = log.TakeUnsent(MaxBatchesPerMessage);
                if (skipped > 0) Interlocked.Add(ref _notSent, skipped);
                if (batches.Length == 0) break;
                try
                {
                    var stream = _services.GetRequiredService<IClusterClient>().GetStreamProvider(PipelineNames.ResultsStreamProvider)
                        .GetStream<ResultFeed>(StreamId.Create(PipelineNames.ResultsNamespace, pipeline));
                    await stream.OnNextAsync(new ResultFeed(pipeline, batches, Origin, first));
                    log.MarkSent(first + batches.Length - 1);
                }
                catch (Exception e)
                {
                    // Left in the log: the next interval tries again, unless newer results overwrite them first.
                    LogSendFailed(e, pipeline, batches.Length);
                    break;
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _stop.Cancel();
        await _loop;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The live results feed of pipeline '{Pipeline}' did not take {Count} keys' results; trying again")]
    private partial void LogSendFailed(Exception exception, string pipeline, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} keys' results were overwritten in the recent-results log before the live feed sent them ({Total} so far): subscribers see the gap in positions; the keys' state (and the results table in cluster mode) has them")]
    private partial void LogNotSent(long count, long total);
}

/// <summary>
/// One pipeline's recent results on one silo: a ring of the latest key result batches, numbered 1, 2, 3, … in the
/// order they were appended, with the position up to which the live feed has sent them. Thread-safe.
/// </summary>
public sealed class RecentResultsLog
{
    private readonly Lock _gate = new();
    private readonly ResultBatch[] _ring;
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _latest;
    private long _sent;
    private long _signalled;

    public RecentResultsLog(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _ring = new ResultBatch[capacity];
    }

    /// <summary>The latest position (0 before the first append).</summary>
    public long Latest
    {
        get { lock (_gate) return _latest; }
    }

    /// <summary>The oldest position still held.</summary>
    public long Oldest
    {
        get { lock (_gate) return OldestHeld; }
    }

    private long OldestHeld => Math.Max(1, _latest - _ring.Length + 1);

    /// <summary>Appends a batch and returns its position; the oldest batch makes room when the log is full.</summary>
    public long Append(ResultBatch batch)
    {
        lock (_gate)
        {
            var position = ++_latest;
            _ring[(int)(position % _ring.Length)] = batch;
            return position;
        }
    }

    /// <summary>
    /// The batches after <paramref name="after"/> still held (from the oldest held, if older ones were overwritten),
    /// at most <paramref name="max"/>, with the oldest and latest positions at that moment (one snapshot).
    /// </summary>
    public (long First, ResultBatch[] Batches, long Oldest, long Latest) Read(long after, int max)
    {
        lock (_gate)
        {
            var first = Math.Max(after + 1, OldestHeld);
            return (first, Copy(first, max), OldestHeld, _latest);
        }
    }

    /// <summary>
    /// The next batches the feed has not sent, at most <paramref name="max"/>, and how many unsent batches were
    /// overwritten before they could be sent (they are skipped).
    /// </summary>
    public (long First, ResultBatch[] Batches, long Skipped) TakeUnsent(int max)
    {
        lock (_gate)
        {
            var oldest = OldestHeld;
            long skipped = 0;
            if (_sent < oldest - 1)
            {
                skipped = oldest - 1 - _sent;
                _sent = oldest - 1;
            }

            return (_sent + 1, Copy(_sent + 1, max), skipped);
        }
    }

    /// <summary>Records that the feed sent everything up to <paramref name="position"/>.</summary>
    public void MarkSent(long position)
    {
        lock (_gate) _sent = Math.Max(_sent, position);
    }

    /// <summary>Completes when a position after <paramref name="after"/> exists and has been signalled (see <see cref="Signal"/>).</summary>
    public Task WhenAfter(long after)
    {
        lock (_gate) return _signalled > after ? Task.CompletedTask : _appended.Task;
    }

    /// <summary>Wakes the readers waiting for new positions, if there are new ones (once per feed interval, not per append).</summary>
    public void Signal()
    {
        TaskCompletionSource? wake = null;
        lock (_gate)
        {
            if (_latest > _signalled)
            {
                _signalled = _latest;
                wake = _appended;
                _appended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        wake?.TrySetResult();
    }

    private ResultBatch[] Copy(long first, int max)
    {
        var count = (int)Math.Clamp(_latest - first + 1, 0, max);
        var batches = new ResultBatch[count];
        for (var i = 0; i < count; i++) batches[i] = _ring[(int)((first + i) % _ring.Length)];
        return batches;
    }
}
