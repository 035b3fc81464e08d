using Orleans.Pipeline.Client;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Tests.Chaining;

/// <summary>
/// Chained pipelines under test with a brute-force evaluation of each, independent of the engine: upstream windows
/// per key over every event, then downstream windows per downstream key over the upstream windows' values.
/// </summary>
public sealed record ChainPlan(
    string Name,
    PipelineDefinition Upstream,
    PipelineDefinition Downstream,
    string[] Keys,
    string Field,
    Func<string, string> DownstreamKey,
    Func<IReadOnlyList<double>, double> UpstreamAggregate,
    Func<IReadOnlyList<(string Key, double Value)>, ChainExpected> DownstreamAggregate)
{
    public const int Partitions = 4;
    public const long Disorder = 100;
    public const long Lateness = 400;

    /// <summary>Tumbling 1 s max per auction, then the global max per window (<c>all</c>).</summary>
    public static ChainPlan GlobalMax(string prefix) => new(
        "max per auction, then the global max",
        PipelineBuilder.Named($"{prefix}-bids").Tumbling(TimeSpan.FromSeconds(1)).Disorder(TimeSpan.FromMilliseconds(Disorder))
            .AllowedLateness(TimeSpan.FromMilliseconds(Lateness)).Partitions(Partitions).Max("price").Build(),
        PipelineBuilder.Named($"{prefix}-top-bid").From($"{prefix}-bids", "all").Tumbling(TimeSpan.FromSeconds(1))
            .AllowedLateness(TimeSpan.FromSeconds(1)).KeepClosedWindows(1000).Max("max_price").Build(),
        [.. Enumerable.Range(0, 40).Select(i => $"auction-{i}")],
        "price",
        _ => ChainInput.AllKey,
        v => v.Max(),
        v => new ChainExpected([v.Max(c => c.Value)]));

    /// <summary>Tumbling 1 s average per device, then the average and count per region over 2 s (<c>prefix:/</c>).</summary>
    public static ChainPlan RegionAverage(string prefix) => new(
        "average per device, then the average per region",
        PipelineBuilder.Named($"{prefix}-devices").Tumbling(TimeSpan.FromSeconds(1)).Disorder(TimeSpan.FromMilliseconds(Disorder))
            .AllowedLateness(TimeSpan.FromMilliseconds(Lateness)).Partitions(Partitions).Avg("temp").Build(),
        PipelineBuilder.Named($"{prefix}-regions").From($"{prefix}-devices", "prefix:/").Tumbling(TimeSpan.FromSeconds(2))
            .AllowedLateness(TimeSpan.FromSeconds(1)).KeepClosedWindows(1000).Avg("avg_temp").Build(),
        [.. new[] { "eu", "us", "ap" }.SelectMany(r => Enumerable.Range(0, 12).Select(i => $"{r}/device-{i}"))],
        "temp",
        k => k[..k.IndexOf('/')],
        v => v.Average(),
        v => new ChainExpected([v.Average(c => c.Value)]));

    /// <summary>Hopping 2 s / 1 s count per item, then the highest count in each of the same windows (<c>all</c>).</summary>
    public static ChainPlan HotItems(string prefix) => new(
        "hopping count per item, then the highest count per window",
        PipelineBuilder.Named($"{prefix}-views").Hopping(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1)).Disorder(TimeSpan.FromMilliseconds(Disorder))
            .AllowedLateness(TimeSpan.FromMilliseconds(Lateness)).Partitions(Partitions).Count().Build(),
        PipelineBuilder.Named($"{prefix}-hot-items").From($"{prefix}-views", "all").Hopping(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1))
            .AllowedLateness(TimeSpan.FromSeconds(1)).KeepClosedWindows(1000).Max("count").Build(),
        [.. Enumerable.Range(0, 30).Select(i => $"item-{i}")],
        "n",
        _ => ChainInput.AllKey,
        v => v.Count,
        v => new ChainExpected([v.Max(c => c.Value)]));

    /// <summary>Hopping 2 s / 1 s count per item, then the three most viewed items in each of the same windows, with their keys.</summary>
    public static ChainPlan TopItems(string prefix) => new(
        "hopping count per item, then the global top 3 per window",
        PipelineBuilder.Named($"{prefix}-views").Hopping(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1)).Disorder(TimeSpan.FromMilliseconds(Disorder))
            .AllowedLateness(TimeSpan.FromMilliseconds(Lateness)).Partitions(Partitions).Count().Build(),
        PipelineBuilder.Named($"{prefix}-top-items").From($"{prefix}-views", "all").Hopping(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1))
            .AllowedLateness(TimeSpan.FromSeconds(1)).KeepClosedWindows(1000).Aggregate(AggregationSpec.Top("count", 3)).Build(),
        [.. Enumerable.Range(0, 30).Select(i => $"item-{i}")],
        "n",
        _ => ChainInput.AllKey,
        v => v.Count,
        v =>
        {
            var best = v.OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).Take(3).ToList();
            return new ChainExpected([.. Enumerable.Range(0, 3).Select(i => i < best.Count ? best[i].Value : double.NaN)],
                [.. Enumerable.Range(0, 3).Select(i => i < best.Count ? best[i].Key : null)]);
        });

    /// <summary>
    /// A seeded trace from <paramref name="start"/>: times move forward 5 ms per event; 85% are out of order by less
    /// than the disorder, 15% by more (behind the watermark, within the lateness: they revise fired windows).
    /// Values are whole numbers, so sums and averages are exact whatever the order.
    /// </summary>
    public List<PipelineEvent> Trace(int seed, long start, int count, double lateShare = 0.15)
    {
        var random = new Random(seed);
        var events = new List<PipelineEvent>(count);
        for (var i = 0; i < count; i++)
        {
            var behind = random.NextDouble() >= lateShare ? random.NextInt64(0, Disorder) : random.NextInt64(Disorder, Lateness + Disorder - 50);
            var time = Math.Max(start, start + i * 5L - behind);
            events.Add(new PipelineEvent(Keys[random.Next(Keys.Length)], time, new Dictionary<string, double> { [Field] = random.Next(0, 1000) }));
        }

        return events;
    }

    /// <summary>
    /// One event per upstream partition far after <paramref name="after"/> (on keys that exist only for this): every
    /// partition's watermark passes every window of the trace, so all of them close, upstream and downstream.
    /// </summary>
    public List<PipelineEvent> Flush(long after) =>
        [.. Enumerable.Range(0, Partitions).Select(p => new PipelineEvent(FlushKey(p), after + 20_000, new Dictionary<string, double> { [Field] = 0 }))];

    private static string FlushKey(int partition)
    {
        for (var i = 0; ; i++)
        {
            var key = $"zz/flush-{i}";
            if (PipelineNames.PartitionOf(key, Partitions) == partition) return key;
        }
    }

    /// <summary>The downstream results the trace must produce: (downstream key, start, end) → value.</summary>
    public Dictionary<(string Key, long Start, long End), ChainExpected> BruteForce(IEnumerable<PipelineEvent> events)
    {
        var up = Upstream.Windowing.Window;
        var upstream = new Dictionary<(string Key, long Start, long End), List<double>>();
        foreach (var e in events)
        {
            for (var s = e.TimeMs - Mod(e.TimeMs, up.SlideMs); s > e.TimeMs - up.SizeMs; s -= up.SlideMs)
            {
                if (!upstream.TryGetValue((e.Key, s, s + up.SizeMs), out var values)) upstream[(e.Key, s, s + up.SizeMs)] = values = [];
                values.Add(e.Fields[Field]);
            }
        }

        var down = Downstream.Windowing.Window;
        var downstream = new Dictionary<(string, long, long), List<(string, double)>>();
        foreach (var ((key, start, end), values) in upstream)
        {
            var value = UpstreamAggregate(values);
            // The same windows downstream: each upstream window goes to its own; otherwise by its last instant.
            var starts = down.SizeMs == end - start && Mod(start, down.SlideMs) == 0
                ? [start]
                : Enumerable.Range(0, (int)(down.SizeMs / down.SlideMs)).Select(i => end - 1 - Mod(end - 1, down.SlideMs) - i * down.SlideMs).ToArray();
            foreach (var s in starts)
            {
                var id = (DownstreamKey(key), s, s + down.SizeMs);
                if (!downstream.TryGetValue(id, out var list)) downstream[id] = list = [];
                list.Add((key, value));
            }
        }

        return downstream.ToDictionary(p => p.Key, p => DownstreamAggregate(p.Value));
    }

    private static long Mod(long value, long by) => ((value % by) + by) % by;
}

/// <summary>A downstream window's values, and the keys they belong to (top-N) or null.</summary>
public sealed record ChainExpected(double[] Values, string?[]? Labels = null)
{
    /// <summary>What differs in <paramref name="actual"/>, or null when it matches (values to 1e-9 relative: averages sum in another order).</summary>
    public string? Difference(WindowResult actual)
    {
        for (var i = 0; i < Values.Length; i++)
        {
            var (e, a) = (Values[i], actual.Values[i]);
            if (double.IsNaN(e) != double.IsNaN(a) || (!double.IsNaN(e) && Math.Abs(a - e) > 1e-9 * Math.Max(1, Math.Abs(e))))
                return $"expected {this}, got {actual}";
        }

        return Labels is null || (actual.Labels is { } labels && labels.SequenceEqual(Labels)) ? null : $"expected {this}, got {actual}";
    }

    public override string ToString() => $"[{string.Join(", ", Values.Select((v, i) => Labels?[i] is { } l ? $"{l}: {v}" : $"{v}"))}]";
}
