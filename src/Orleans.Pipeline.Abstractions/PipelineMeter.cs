using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Orleans.Pipeline;

/// <summary>
/// The project's own metrics, meter <c>Orleans.Pipeline</c> (beside Orleans' <c>Microsoft.Orleans</c> and Npgsql's):
/// what an operator of a stream processor watches — throughput, lateness, dead letters, windows, lag, latency,
/// backpressure, storage and the gateway. Tags are the pipeline and, where it matters, a reason or kind; never a key
/// (unbounded) and never a secret. Every instrument is listed in the README ("Metrics").
/// </summary>
public static class PipelineMeter
{
    /// <summary>The meter's name, to enable it in an exporter.</summary>
    public const string Name = "Orleans.Pipeline";

    private static readonly Meter Meter = new(Name, "1.0");
    private static readonly ConcurrentDictionary<string, WatermarkCell> Watermarks = new(StringComparer.Ordinal);

    /// <summary>Events applied to windows by key grains (not late, not refused).</summary>
    public static readonly Counter<long> EventsApplied = Meter.CreateCounter<long>("pipeline.events.applied", "{event}", "Events applied to windows");

    /// <summary>Events that arrived after their windows closed (beyond the allowed lateness).</summary>
    public static readonly Counter<long> EventsLate = Meter.CreateCounter<long>("pipeline.events.late", "{event}", "Events too late for their windows");

    /// <summary>Dead letters, by reason: events or items the pipeline did not apply.</summary>
    public static readonly Counter<long> DeadLetters = Meter.CreateCounter<long>("pipeline.dead_letters", "{letter}", "Events or items not applied, by reason");

    /// <summary>Window results emitted, by kind (final, update, retraction, partial).</summary>
    public static readonly Counter<long> WindowsEmitted = Meter.CreateCounter<long>("pipeline.windows.emitted", "{result}", "Window results emitted, by kind");

    /// <summary>Partition items applied (one stream item: events of many keys).</summary>
    public static readonly Counter<long> ItemsApplied = Meter.CreateCounter<long>("pipeline.items.applied", "{item}", "Partition items applied");

    /// <summary>Deliveries dropped as repeats: items (by a partition) and key slices (by a key).</summary>
    public static readonly Counter<long> Duplicates = Meter.CreateCounter<long>("pipeline.duplicates", "{delivery}", "Redeliveries dropped as repeats, by level (item, slice, request-events)");

    /// <summary>Milliseconds from a producer's send of an item to a key's apply of its slice.</summary>
    public static readonly Histogram<double> ApplyLatency = Meter.CreateHistogram<double>("pipeline.apply.latency", "ms", "From an item's send to its key's apply");

    /// <summary>Milliseconds from a window's end to its final result (when event time follows the wall clock).</summary>
    public static readonly Histogram<double> ResultLatency = Meter.CreateHistogram<double>("pipeline.result.latency", "ms", "From a window's end to its final result");

    /// <summary>Key grains active on this process.</summary>
    public static readonly UpDownCounter<long> ActiveKeys = Meter.CreateUpDownCounter<long>("pipeline.keys.active", "{key}", "Key grains active");

    /// <summary>Key grains deactivated because the silo's memory use passed its limit (their state stored first).</summary>
    public static readonly Counter<long> KeysShed = Meter.CreateCounter<long>("pipeline.keys.shed", "{key}", "Key grains deactivated to free memory");

    /// <summary>Milliseconds one group commit of key state (and results) took, by store.</summary>
    public static readonly Histogram<double> StateWriteDuration = Meter.CreateHistogram<double>("pipeline.state.write.duration", "ms", "One group commit of key state");

    /// <summary>Writes per group commit, by store.</summary>
    public static readonly Histogram<long> StateWriteGroupSize = Meter.CreateHistogram<long>("pipeline.state.write.group_size", "{write}", "Writes committed together");

    /// <summary>Events accepted by a producer (SDK client or gateway) for publishing.</summary>
    public static readonly Counter<long> EventsPublished = Meter.CreateCounter<long>("pipeline.client.events.published", "{event}", "Events accepted by a producer");

    /// <summary>Times a producer or sender waited because the pipeline was behind.</summary>
    public static readonly Counter<long> BackpressureWaits = Meter.CreateCounter<long>("pipeline.client.backpressure.waits", "{wait}", "Waits because the pipeline was behind");

    /// <summary>Gateway calls, by method and gRPC status.</summary>
    public static readonly Counter<long> GatewayRequests = Meter.CreateCounter<long>("pipeline.gateway.requests", "{call}", "Gateway calls, by method and status");

    /// <summary>Gateway calls refused by a limit, by limit.</summary>
    public static readonly Counter<long> GatewayRefusals = Meter.CreateCounter<long>("pipeline.gateway.refusals", "{call}", "Gateway calls refused by a limit");

    /// <summary>Open gateway subscriptions.</summary>
    public static readonly UpDownCounter<long> GatewaySubscribers = Meter.CreateUpDownCounter<long>("pipeline.gateway.subscribers", "{subscription}", "Open gateway subscriptions");

    static PipelineMeter()
    {
        Meter.CreateObservableGauge("pipeline.watermark.lag", ObserveLag, "ms",
            "Processing time minus the highest watermark of the pipeline's keys on this process");
    }

    /// <summary>Tags for a pipeline.</summary>
    public static KeyValuePair<string, object?> Pipeline(string pipeline) => new("pipeline", pipeline);

    /// <summary>Notes a key's watermark; the pipeline's lag is measured from the highest one.</summary>
    public static void ObserveWatermark(string pipeline, long watermark)
    {
        if (watermark == long.MinValue) return;
        var cell = Watermarks.GetOrAdd(pipeline, static _ => new WatermarkCell());
        var seen = Interlocked.Read(ref cell.Value);
        while (watermark > seen)
        {
            var was = Interlocked.CompareExchange(ref cell.Value, watermark, seen);
            if (was == seen) break;
            seen = was;
        }
    }

    private static IEnumerable<Measurement<double>> ObserveLag()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var (pipeline, cell) in Watermarks)
        {
            var watermark = Interlocked.Read(ref cell.Value);
            if (watermark != long.MinValue) yield return new Measurement<double>(now - watermark, Pipeline(pipeline));
        }
    }

    private sealed class WatermarkCell
    {
        public long Value = long.MinValue;
    }
}
