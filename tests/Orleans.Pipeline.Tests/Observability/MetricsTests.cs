using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Tests.Reference;
using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests.Observability;

/// <summary>
/// The meter <c>Orleans.Pipeline</c> during a known workload: events applied, late events, dead letters and windows
/// emitted by kind equal what the brute-force reference says the workload implies.
/// </summary>
public sealed class MetricsTests
{
    /// <summary>A pipeline of this test alone, so that measurements of tests running beside it are told apart by its tag.</summary>
    private static readonly PipelineDefinition Metered = new("metered", PipelineCluster.Pipelines[0].Windowing);

    [Fact]
    public async Task The_counters_for_events_late_events_dead_letters_and_windows_equal_what_the_workload_implies()
    {
        using var recorder = new Recorder(Metered.Name);
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.Add(Metered));
        await using var client = cluster.NewClient(new() { MaxBatchSize = 7 });

        var traces = Enumerable.Range(31, 4).Select(seed => (Key: $"m-{seed}", Events: Events(seed, WindowKind.Tumbling))).ToList();
        long applied = 0, late = 0;
        var kinds = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (key, events) in traces)
        {
            var reference = new ReferenceWindowing(Metered.Windowing);
            foreach (var e in events)
            {
                var (results, outcome) = reference.Step(e);
                if (outcome == EventOutcome.Late) late++;
                else applied++;
                foreach (var r in results)
                {
                    var kind = r.Kind.ToString().ToLowerInvariant();
                    kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
                }

                await client.PublishAsync(Metered.Name, ToEvent(key, e));
            }
        }

        // One more item, past the SDK's validation: one event applied, one out of the time range (a dead letter).
        var raw = PartitionBatch.ForKey("raw", Metered.Partitions, Guid.NewGuid(), 1, Metered.Windowing.Fields.ToArray(), [5, -7], [1, 1, 1, 1]);
        await cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey(Metered.Name, raw.Partition)))
            .OnNextAsync(raw);
        await client.WaitUntilAppliedAsync();
        await WaitUntilAsync(async () => (await client.QueryAsync(Metered.Name, "raw")).AppliedEvents == 1, "the raw item applied");

        Assert.Equal(applied + late, recorder.Sum("pipeline.client.events.published"));
        Assert.Equal(applied + 1, recorder.Sum("pipeline.events.applied"));
        Assert.Equal(late, recorder.Sum("pipeline.events.late"));
        Assert.Equal(1, recorder.Sum("pipeline.dead_letters", ("reason", "event-time-out-of-range")));
        Assert.Equal(1, recorder.Sum("pipeline.dead_letters"));
        foreach (var (kind, count) in kinds) Assert.Equal(count, recorder.Sum("pipeline.windows.emitted", ("kind", kind)));
        Assert.Equal(kinds.Values.Sum(), recorder.Sum("pipeline.windows.emitted"));
        Assert.True(recorder.Sum("pipeline.items.applied") > 0);
        Assert.Equal(traces.Count + 1, recorder.Sum("pipeline.keys.active"));
        Assert.True(recorder.Count("pipeline.apply.latency") > 0, "no apply latency recorded");
        Assert.True(late > 0, "the workload has late events");

        // The watermark lag: processing time minus the highest watermark of the pipeline's keys.
        var watermark = (await Task.WhenAll(traces.Select(t => client.QueryAsync(Metered.Name, t.Key)).Append(client.QueryAsync(Metered.Name, "raw")))).Max(w => w.Watermark);
        var lag = recorder.Observe("pipeline.watermark.lag");
        var expectedLag = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - watermark;
        Assert.InRange(lag, expectedLag - 60_000, expectedLag);
    }

    /// <summary>Sums the meter's measurements of one pipeline, per instrument and tag.</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<(string Instrument, double Value, KeyValuePair<string, object?>[] Tags)> _measurements = new();
        private readonly string _pipeline;

        public Recorder(string pipeline)
        {
            _pipeline = pipeline;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == PipelineMeter.Name) listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
            _listener.Start();
        }

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var array = tags.ToArray();
            if (array.Any(t => t.Key == "pipeline" && Equals(t.Value, _pipeline))) _measurements.Enqueue((instrument.Name, value, array));
        }

        public long Sum(string instrument, params (string Key, string Value)[] tags) =>
            (long)_measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.Any(x => x.Key == t.Key && Equals(x.Value, t.Value)))).Sum(m => m.Value);

        public int Count(string instrument) => _measurements.Count(m => m.Instrument == instrument);

        /// <summary>Reads the observable instruments now; the latest value of <paramref name="instrument"/> for the pipeline.</summary>
        public double Observe(string instrument)
        {
            _listener.RecordObservableInstruments();
            return _measurements.Last(m => m.Instrument == instrument).Value;
        }

        public void Dispose() => _listener.Dispose();
    }
}
