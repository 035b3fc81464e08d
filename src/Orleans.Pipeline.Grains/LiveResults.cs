using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// The silo's publisher of the live results feed: key grains and partitions hand it what fired, and it sends one
/// <see cref="ResultFeed"/> message per pipeline every <see cref="Interval"/> (at most <see cref="MaxBatchesPerMessage"/>
/// keys' results each), so the feed's message rate does not grow with the number of keys, nor with keys whose windows
/// close on their own timers. The feed is best effort (the key's state, and in cluster mode the results table, are the
/// record); what could not be sent is counted and logged, never dropped without a word.
/// </summary>
public sealed partial class LiveResults : IAsyncDisposable, ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>How often the feed is sent.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    /// <summary>Most keys' results per message (the feed's transport limits message size).</summary>
    public const int MaxBatchesPerMessage = 1024;

    /// <summary>Results held per pipeline at most while the feed is behind; beyond it they are counted as not sent.</summary>
    public const int MaxPending = 262_144;

    private readonly ConcurrentDictionary<string, ConcurrentQueue<ResultBatch>> _pending = new(StringComparer.Ordinal);
    private readonly IServiceProvider _services;
    private readonly ILogger<LiveResults> _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _notSent;
    private int _disposed;

    public LiveResults(IServiceProvider services, ILogger<LiveResults> logger)
    {
        _services = services;
        _logger = logger;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Sends what is queued and stops while the silo still runs its streams (before grains are deactivated at shutdown).</summary>
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(LiveResults), ServiceLifecycleStage.Active, _ => Task.CompletedTask, _ => DisposeAsync().AsTask());

    /// <summary>Results not sent on the feed so far (the feed was full or down).</summary>
    public long NotSent => Interlocked.Read(ref _notSent);

    /// <summary>Queues what one key fired for the next message.</summary>
    public void Add(ResultBatch batch)
    {
        if (_disposed != 0) return; // shutting down: the feed has no subscribers left to serve
        var queue = _pending.GetOrAdd(batch.Pipeline, _ => new ConcurrentQueue<ResultBatch>());
        if (queue.Count >= MaxPending)
        {
            Interlocked.Increment(ref _notSent);
            return;
        }

        queue.Enqueue(batch);
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
        foreach (var (pipeline, queue) in _pending)
        {
            while (!queue.IsEmpty)
            {
                var batches = new List<ResultBatch>(Math.Min(queue.Count, MaxBatchesPerMessage));
                while (batches.Count < MaxBatchesPerMessage && queue.TryDequeue(out var batch)) batches.Add(batch);
                try
                {
                    var stream = _services.GetRequiredService<IClusterClient>().GetStreamProvider(PipelineNames.ResultsStreamProvider)
                        .GetStream<ResultFeed>(StreamId.Create(PipelineNames.ResultsNamespace, pipeline));
                    await stream.OnNextAsync(new ResultFeed(pipeline, [.. batches]));
                }
                catch (Exception e)
                {
                    Interlocked.Add(ref _notSent, batches.Count);
                    LogSendFailed(e, pipeline, batches.Count);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "The live results feed of pipeline '{Pipeline}' did not take {Count} keys' results; they are in the keys' state (and the results table in cluster mode)")]
    private partial void LogSendFailed(Exception exception, string pipeline, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} keys' results were not sent on the live feed ({Total} so far): subscribers missed them; the keys' state (and the results table in cluster mode) has them")]
    private partial void LogNotSent(long count, long total);
}
