using Orleans.Pipeline.Client;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Tests.Reference;
using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests.Scenarios;

/// <summary>
/// What every mode promises, written once: generated traces published through the SDK produce exactly the windows
/// the brute-force reference computes (late events included), a restart continues them, a redelivered item is
/// applied once, bad input is refused with the problem named, what a key cannot apply is a dead letter, a flood
/// waits instead of failing, and results can be queried and subscribed to. Each mode runs it through a small
/// subclass that starts its cluster (<see cref="IScenarioCluster"/>).
/// </summary>
public abstract class PipelineScenarios
{
    private const int SeedsPerKind = 4;

    /// <summary>A fresh cluster of the mode, running <see cref="PipelineCluster.Pipelines"/> and <see cref="ScenarioPipelines.Flood"/>.</summary>
    protected abstract Task<IScenarioCluster> StartAsync();

    [Theory]
    [InlineData(WindowKind.Tumbling)]
    [InlineData(WindowKind.Hopping)]
    [InlineData(WindowKind.Session)]
    public async Task Published_events_produce_exactly_the_reference_windows_and_each_revision_once(WindowKind kind)
    {
        await using var cluster = await StartAsync();
        var definition = PipelineCluster.Pipelines.Single(p => p.Windowing.Window.Kind == kind);
        await using var client = cluster.NewClient(new() { MaxBatchSize = 7 });
        var live = new ResultCollector();
        await using var subscription = await client.SubscribeAsync(definition.Name, b => { live.Add(b); return Task.CompletedTask; });

        var traces = Enumerable.Range(1, SeedsPerKind).Select(seed => (Key: $"seed-{seed}", Events: Events(seed, kind))).ToList();
        await Task.WhenAll(traces.Select(async t =>
        {
            foreach (var e in t.Events) await client.PublishAsync(definition.Name, ToEvent(t.Key, e));
        }));
        // Waits on the partitions' word that every item is applied, not on polling the keys.
        await client.WaitUntilAppliedAsync();

        foreach (var (key, events) in traces)
        {
            var (expected, late) = Expected(definition, events);
            var windows = await client.QueryAsync(definition.Name, key);
            Assert.Equal((events.Count - late, late), (windows.AppliedEvents, windows.LateEvents));
            await AssertResultsAsync(cluster, definition, key, expected, late);
            live.AssertEachRevisionOnceInOrder(definition.Name, key);
        }

        Assert.Equal(0, subscription.MissedBatches);
    }

    [Fact]
    public async Task Restarting_the_cluster_mid_stream_continues_the_windows_and_loses_nothing_accepted()
    {
        var traces = PipelineCluster.Pipelines.SelectMany(p => new[] { 21, 22 }.Select(seed => (Pipeline: p, Key: $"restart-{seed}", Events: Events(seed, p.Windowing.Window.Kind)))).ToList();
        var halves = traces.Select(t => t.Events.Count / 2).ToList();

        var cluster = await StartAsync();
        try
        {
            await using (var client = cluster.NewClient(new() { MaxBatchSize = 7 }))
            {
                await Task.WhenAll(traces.Select(async (t, i) =>
                {
                    foreach (var e in t.Events.Take(halves[i])) await client.PublishAsync(t.Pipeline.Name, ToEvent(t.Key, e));
                }));
                // Accepted and applied; then the cluster goes down the way its mode promises to survive.
                await client.WaitUntilAppliedAsync();
            }

            cluster = await cluster.RestartAsync();
            await using var client2 = cluster.NewClient(new() { MaxBatchSize = 7 });
            for (var i = 0; i < traces.Count; i++) await WaitAppliedAsync(client2, traces[i].Pipeline.Name, traces[i].Key, halves[i]);
            await Task.WhenAll(traces.Select(async (t, i) =>
            {
                foreach (var e in t.Events.Skip(halves[i])) await client2.PublishAsync(t.Pipeline.Name, ToEvent(t.Key, e));
            }));
            await client2.WaitUntilAppliedAsync();

            foreach (var (pipeline, key, events) in traces)
            {
                var (expected, late) = Expected(pipeline, events);
                var windows = await client2.QueryAsync(pipeline.Name, key);
                Assert.Equal(events.Count, windows.AppliedEvents + windows.LateEvents);
                await AssertResultsAsync(cluster, pipeline, key, expected, late);
            }
        }
        finally
        {
            await cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_same_item_delivered_twice_is_applied_once()
    {
        await using var cluster = await StartAsync();
        var definition = PipelineCluster.Pipelines[0];
        var fields = definition.Windowing.Fields.ToArray();
        var item = PartitionBatch.ForKey("dup", definition.Partitions, Guid.NewGuid(), 1, fields, [1, 2, 3], [1, 2, 3, 4, 5, 6]);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey(definition.Name, item.Partition)));

        await stream.OnNextAsync(item);
        await stream.OnNextAsync(item); // a client retry after a lost acknowledgement
        await stream.OnNextAsync(item with { Sequence = 2, Times = [4], Values = [7, 8], KeyEnds = [1] });

        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(definition.Name, "dup"));
        // Items of one partition are applied in order: once the third is in, the repeat before it was dropped or applied.
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents >= 4, "4 applied events");
        var windows = await grain.GetWindowsAsync();
        Assert.Equal(4, windows.AppliedEvents);
        Assert.Equal(4, Assert.Single(windows.Open).EventCount);
    }

    [Fact]
    public async Task Bad_input_is_refused_with_the_problem_named_and_earlier_events_are_kept()
    {
        await using var cluster = await StartAsync();
        await using var client = cluster.NewClient();
        var good = new PipelineEvent("k", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 });
        await client.PublishAsync("tumbling", good);

        var unknown = await Assert.ThrowsAsync<UnknownPipelineException>(() => client.PublishAsync("payments", good));
        Assert.Contains("unknown pipeline 'payments'", unknown.Message, StringComparison.Ordinal);
        var noKey = await Assert.ThrowsAsync<ArgumentException>(() => client.PublishAsync("tumbling", good with { Key = "" }));
        Assert.Contains("event key is missing", noKey.Message, StringComparison.Ordinal);
        var nan = await Assert.ThrowsAsync<ArgumentException>(() => client.PublishAsync("tumbling", good with { Fields = new Dictionary<string, double> { ["a"] = double.NaN, ["b"] = 1 } }));
        Assert.Contains("field 'a' is NaN", nan.Message, StringComparison.Ordinal);
        var missing = await Assert.ThrowsAsync<ArgumentException>(() => client.PublishAsync("tumbling", good with { Fields = new Dictionary<string, double> { ["a"] = 1 } }));
        Assert.Contains("field 'b' is missing", missing.Message, StringComparison.Ordinal);
        var time = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.PublishAsync("tumbling", good with { TimeMs = -1 }));
        Assert.Contains("event time -1 is outside", time.Message, StringComparison.Ordinal);

        await client.FlushAsync();
        await WaitAppliedAsync(client, "tumbling", "k", 1);
        Assert.Equal(1, (await client.QueryAsync("tumbling", "k")).Open.Single().EventCount);
    }

    [Fact]
    public async Task An_event_a_key_cannot_apply_becomes_a_dead_letter_with_its_reason_and_the_rest_of_its_item_is_applied()
    {
        await using var cluster = await StartAsync();
        var definition = PipelineCluster.Pipelines[0];
        // An item that bypassed the SDK's validation: its second event is out of the time range.
        var item = PartitionBatch.ForKey("raw", definition.Partitions, Guid.NewGuid(), 1, definition.Windowing.Fields.ToArray(), [5, -7], [1, 1, 1, 1]);
        await cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey(definition.Name, item.Partition)))
            .OnNextAsync(item);

        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(definition.Name, "raw"));
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()) is { AppliedEvents: 1, RejectedEvents: 1 }, "one event applied, one refused");
        if (await cluster.DeadLettersStoredAsync(definition.Name, "raw", "event-time-out-of-range") is { } stored) Assert.Equal(1, stored);
    }

    [Fact]
    public async Task A_flood_waits_instead_of_failing_and_every_accepted_event_is_in_exactly_one_window()
    {
        const int keys = 2_000, events = 60_000, batch = 500;
        await using var cluster = await StartAsync();
        await using var client = cluster.NewClient(new PipelineClientOptions { MaxBatchSize = batch, MaxUnappliedBatches = 2, Linger = TimeSpan.FromMilliseconds(5) });
        var flood = ScenarioPipelines.Flood;
        var perKey = await ScenarioPipelines.PublishFloodAsync(client, keys, events, seed: 5);

        await client.FlushAsync();
        Assert.Equal(events, client.PublishedEvents);
        Assert.True(client.BackpressureWaits > 0, "the flood never had to wait: it did not exceed what the grains take");
        // Many keys, yet the client's memory is bounded by partitions and items.
        Assert.True(client.PeakBufferedEvents <= batch, $"a partition buffer held {client.PeakBufferedEvents} events, more than an item ({batch})");

        await client.WaitUntilAppliedAsync();
        for (var key = 0; key < keys; key++)
        {
            if (perKey[key] == 0) continue;
            var windows = await client.QueryAsync(flood.Name, $"k{key}");
            Assert.Equal(perKey[key], windows.AppliedEvents);
            var window = Assert.Single(windows.Open);
            Assert.Equal((perKey[key], (double)perKey[key]), (window.EventCount, window.Values[1]));
        }
    }

    [Fact]
    public async Task Typed_records_published_through_selectors_arrive_as_an_async_stream_of_results()
    {
        await using var cluster = await StartAsync();
        await using var client = cluster.NewClient();
        using var cancel = new CancellationTokenSource(Deadline);
        var reading = Task.Run(async () =>
        {
            await foreach (var batch in client.ReadResultsAsync("tumbling", cancellationToken: cancel.Token))
                if (batch.Key == "typed" && batch.Results.Any(r => r.Kind == ResultKind.Final))
                    return batch.Results.First(r => r.Kind == ResultKind.Final);
            return null;
        });

        var publisher = client.For<Reading>("tumbling", r => r.Sensor, r => r.At, ("a", r => r.Value), ("b", r => r.Value * 2));
        var epoch = DateTimeOffset.FromUnixTimeMilliseconds(0);
        // The reader subscribes on its first MoveNextAsync: publish until the first window's result reaches it.
        for (var i = 0; !reading.IsCompleted && i < 1_000; i++)
        {
            await publisher.PublishAsync(new Reading("typed", epoch.AddMilliseconds(i), 1));
            await client.FlushAsync();
        }

        var final = await reading;
        Assert.NotNull(final);
        Assert.Equal((10L, 10.0, 20.0), (final.End - final.Start, final.Values[2], final.EventCount * 2.0));
        var windows = await client.QueryAsync("tumbling", "typed");
        Assert.Contains(windows.Closed.Concat(windows.Open), w => (w.Start, w.End) == (final.Start, final.End));
    }

    private sealed record Reading(string Sensor, DateTimeOffset At, double Value);

    /// <summary>Waits until the mode's results for the key equal the reference's, and its recorded late events the reference's count.</summary>
    private static async Task AssertResultsAsync(IScenarioCluster cluster, PipelineDefinition pipeline, string key, Dictionary<(long, long), ReferenceResult> expected, long late)
    {
        string? difference = null;
        long recorded = -1;
        try
        {
            await WaitUntilAsync(async () =>
            {
                difference = Difference(await cluster.ResultsAsync(pipeline.Name, key), expected);
                recorded = await cluster.LateEventsRecordedAsync(pipeline.Name, key);
                return difference is null && recorded == late;
            }, $"results of {pipeline.Name}/{key}");
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{pipeline.Name}/{key}: the results differ from the reference: {difference ?? "(windows equal)"}; late events recorded {recorded}, reference {late}");
        }
    }
}
