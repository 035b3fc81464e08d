using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Windowing;
using Orleans.Runtime;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// The watermark of a pipeline that feeds others, from its partitions' reports. Kept in memory: after a restart it
/// starts low again and rises as partitions report (downstream watermarks never move back, so that only delays).
/// </summary>
internal sealed class ChainWatermarkGrain(PipelineCatalog catalog, [FromKeyedServices(PipelineTime.Key)] TimeProvider time)
    : Grain, IChainWatermarkGrain
{
    private long[] _watermarks = [];
    private long[] _heardAt = [];
    private long _idleMs;
    private bool _followsClock;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var definition = catalog.Find(this.GetPrimaryKeyString());
        var partitions = definition?.Partitions ?? 1;
        _watermarks = Enumerable.Repeat(long.MinValue, partitions).ToArray();
        // Partitions not heard from yet count as quiet from now: they hold the watermark back for one idle time.
        _heardAt = Enumerable.Repeat(Now(), partitions).ToArray();
        _idleMs = ChainTiming.PartitionIdleMs(definition);
        _followsClock = definition?.Windowing.IdleTimeoutMs is not null;
        return Task.CompletedTask;
    }

    public Task<long> ReportAsync(int partition, long watermark)
    {
        if ((uint)partition < (uint)_watermarks.Length)
        {
            if (watermark > _watermarks[partition]) _watermarks[partition] = watermark;
            _heardAt[partition] = Now();
        }

        return GetAsync();
    }

    public Task<long> GetAsync()
    {
        var now = Now();
        long lowest = long.MaxValue, highest = long.MinValue, latest = long.MinValue;
        for (var p = 0; p < _watermarks.Length; p++)
        {
            highest = Math.Max(highest, _watermarks[p]);
            latest = Math.Max(latest, _heardAt[p]);
            if (now - _heardAt[p] < _idleMs) lowest = Math.Min(lowest, _watermarks[p]);
        }

        if (lowest != long.MaxValue) return Task.FromResult(lowest);
        // Every partition quiet. With an idle timeout upstream (its quiet keys have closed their windows by now, and
        // their results have gone downstream), event time follows the clock from the last report, as it does for an
        // idle key: the last windows close too. Without one (a replay of history), the watermark waits for data.
        return Task.FromResult(_followsClock && highest != long.MinValue ? highest + (now - latest) : highest);
    }

    private long Now() => time.GetUtcNow().ToUnixTimeMilliseconds();
}

/// <summary>How long chained pipelines wait for quiet inputs.</summary>
internal static class ChainTiming
{
    /// <summary>
    /// How long an upstream partition may stay quiet before it no longer holds the chain's watermark back: twice the
    /// upstream's idle timeout plus a second (its quiet keys close their windows by their idle timeout first, and
    /// those results arrive before the partition is passed over), or 10 s without one.
    /// </summary>
    public static long PartitionIdleMs(PipelineDefinition? upstream) =>
        upstream?.Windowing.IdleTimeoutMs is { } idle ? 2 * idle + 1_000 : 10_000;

    /// <summary>How often a chained key with open windows looks at its input's watermark.</summary>
    public static readonly TimeSpan DownstreamTick = TimeSpan.FromMilliseconds(250);

    /// <summary>The end of the first window (on <paramref name="window"/>'s grid) that ends after <paramref name="watermark"/>.</summary>
    public static long NextEnd(WindowSpec window, long watermark) =>
        watermark == long.MinValue ? long.MinValue : AlignDown(window, watermark - window.SizeMs) + window.SlideMs + window.SizeMs;

    /// <summary>The end of the last window an event at <paramref name="time"/> belongs to.</summary>
    public static long LastEnd(WindowSpec window, long time) => AlignDown(window, time) + window.SizeMs;

    private static long AlignDown(WindowSpec window, long time)
    {
        var shifted = time - window.OffsetMs;
        return shifted - (((shifted % window.SlideMs) + window.SlideMs) % window.SlideMs) + window.OffsetMs;
    }
}

/// <summary>
/// A silo's view of its inputs' chain watermarks, refreshed from <see cref="IChainWatermarkGrain"/> at most every
/// tick however many chained keys ask, and moved forward by what the silo's partitions hear when they report. Chained
/// keys holding windows leave word when they are next due (<see cref="WakeAt"/>); one loop per silo looks at the
/// watermarks every tick and wakes the keys it has passed, so a thousand quiet chained keys cost no timers.
/// </summary>
public sealed partial class ChainWatermarks : IDisposable, ILifecycleParticipant<ISiloLifecycle>
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<(string Pipeline, string Key), long>> _waiting = new(StringComparer.Ordinal);
    private readonly IGrainFactory _grains;
    private readonly KeyGrainReferences _keys;
    private readonly ILogger<ChainWatermarks> _logger;
    private readonly SiloLoop _loop;

    public ChainWatermarks(IGrainFactory grains, KeyGrainReferences keys, ILogger<ChainWatermarks> logger)
    {
        _grains = grains;
        _keys = keys;
        _logger = logger;
        _loop = new SiloLoop(nameof(ChainWatermarks), ChainTiming.DownstreamTick, TickAsync);
    }

    private sealed class Entry
    {
        public long Watermark = long.MinValue;
        public long RefreshedAt;
        public Task? Refreshing;
    }

    /// <summary>The latest watermark known for <paramref name="pipeline"/> (a refresh runs when it is older than a tick).</summary>
    public async ValueTask<long> GetAsync(string pipeline)
    {
        var entry = _entries.GetOrAdd(pipeline, _ => new Entry());
        if (Environment.TickCount64 - Volatile.Read(ref entry.RefreshedAt) >= ChainTiming.DownstreamTick.TotalMilliseconds)
        {
            Task refreshing;
            lock (entry)
            {
                refreshing = entry.Refreshing ??= RefreshAsync(pipeline, entry);
            }

            await refreshing;
        }

        return Volatile.Read(ref entry.Watermark);
    }

    /// <summary>A watermark heard from the input's watermark grain (a partition's report).</summary>
    public void Observe(string pipeline, long watermark)
    {
        var entry = _entries.GetOrAdd(pipeline, _ => new Entry());
        Raise(entry, watermark);
    }

    /// <summary>
    /// Wakes key <paramref name="key"/> of chained pipeline <paramref name="pipeline"/> once <paramref name="input"/>'s
    /// watermark reaches <paramref name="due"/> (replacing an earlier word of the same key).
    /// </summary>
    public void WakeAt(string input, string pipeline, string key, long due)
    {
        _waiting.GetOrAdd(input, _ => new())[(pipeline, key)] = due;
        _loop.EnsureStarted();
    }

    private async Task TickAsync(CancellationToken stopping)
    {
        foreach (var (input, waiting) in _waiting)
        {
            if (waiting.IsEmpty) continue;
            try
            {
                var watermark = await GetAsync(input);
                var due = waiting.Where(w => w.Value <= watermark).ToList();
                var wakes = new List<Task>(due.Count);
                foreach (var (id, at) in due)
                {
                    // Removed only if the key has not left a later word since.
                    if (!waiting.TryRemove(new KeyValuePair<(string, string), long>(id, at))) continue;
                    wakes.Add(_keys.Get(id.Pipeline, id.Key).ApplyContributionsAsync(new ContributionSlice(-1, 0, [], [], watermark)));
                    if (wakes.Count >= 1_000)
                    {
                        await Task.WhenAll(wakes);
                        wakes.Clear();
                    }
                }

                await Task.WhenAll(wakes);
            }
            catch (Exception e) when (!_loop.Stopping)
            {
                // The keys wake again with their next contribution, or their reminder in cluster mode.
                LogWakeFailed(e, input);
            }
        }
    }

    private async Task RefreshAsync(string pipeline, Entry entry)
    {
        try
        {
            Raise(entry, await _grains.GetGrain<IChainWatermarkGrain>(pipeline).GetAsync());
            Volatile.Write(ref entry.RefreshedAt, Environment.TickCount64);
        }
        finally
        {
            lock (entry) entry.Refreshing = null;
        }
    }

    private static void Raise(Entry entry, long watermark)
    {
        long seen;
        while (watermark > (seen = Volatile.Read(ref entry.Watermark)) && Interlocked.CompareExchange(ref entry.Watermark, watermark, seen) != seen)
        {
        }
    }

    public void Participate(ISiloLifecycle lifecycle) => _loop.Participate(lifecycle);

    public void Dispose() => _loop.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Waking chained keys of input '{Input}' failed; they close their windows with their next contribution or reminder")]
    private partial void LogWakeFailed(Exception exception, string input);
}

/// <summary>
/// Hands a feeding pipeline's results to the keys of the pipelines that read it: maps each result to its downstream
/// key, and calls every downstream key once with all of its contributions.
/// </summary>
public sealed class ChainForwarder
{
    private readonly KeyGrainReferences _keys;

    /// <summary>Per feeding pipeline, derived once from the catalog: where its results go and how they are keyed there.</summary>
    private readonly Dictionary<string, (string Downstream, Func<string, double[], string?> KeyOf)[]> _routes = new(StringComparer.Ordinal);

    /// <summary>The feeding pipelines whose sketches a downstream merges (their results must carry them).</summary>
    private readonly HashSet<string> _sketches = new(StringComparer.Ordinal);

    public ChainForwarder(PipelineCatalog catalog, KeyGrainReferences keys)
    {
        _keys = keys;
        foreach (var upstream in catalog.All)
        {
            var downstreams = catalog.DownstreamsOf(upstream.Name);
            if (downstreams.Count == 0) continue;
            var outputs = upstream.OutputNames(catalog.Registry);
            _routes[upstream.Name] = [.. downstreams.Select(d => (d.Name, d.Input!.Compile(outputs)))];
            if (downstreams.Any(d => Windowing.Chaining.ChainedStage.MergedSketches(d.Windowing, upstream.Windowing, catalog.Registry).Count > 0))
                _sketches.Add(upstream.Name);
        }
    }

    /// <summary>Whether <paramref name="pipeline"/> feeds others.</summary>
    public bool Feeds(string pipeline) => _routes.ContainsKey(pipeline);

    /// <summary>Whether a pipeline <paramref name="pipeline"/> feeds merges its sketches (its results must carry them).</summary>
    public bool NeedsStates(string pipeline) => _sketches.Contains(pipeline);

    /// <summary>Forwards the final results, updates and retractions of <paramref name="batches"/> (partials are previews and are not).</summary>
    public Task ForwardAsync(string pipeline, int partition, long delivery, IEnumerable<ResultBatch> batches, long watermark)
    {
        if (!_routes.TryGetValue(pipeline, out var routes)) return Task.CompletedTask;
        var list = batches as IReadOnlyCollection<ResultBatch> ?? batches.ToList();
        var calls = new List<Task>();
        foreach (var (downstream, keyOf) in routes)
        {
            var groups = new Dictionary<string, (List<string> Keys, List<WindowResult> Results)>(StringComparer.Ordinal);
            foreach (var batch in list)
            {
                foreach (var result in batch.Results)
                {
                    if (result.Kind == ResultKind.Partial) continue;
                    if (keyOf(batch.Key, result.Values) is not { } key) continue;
                    if (!groups.TryGetValue(key, out var group)) groups[key] = group = ([], []);
                    group.Keys.Add(batch.Key);
                    group.Results.Add(result);
                }
            }

            foreach (var (key, group) in groups)
                calls.Add(_keys.Get(downstream, key).ApplyContributionsAsync(new ContributionSlice(partition, delivery, [.. group.Keys], [.. group.Results], watermark)));
        }

        return Task.WhenAll(calls);
    }
}
