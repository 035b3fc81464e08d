using System.Collections.Concurrent;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Tests.Reference;
using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// Events published through the client SDK into an in-process cluster produce exactly the windows the brute-force
/// reference computes, survive a restart of the cluster, and are applied once however often a batch is delivered.
/// </summary>
public sealed class EndToEndTests
{
    private const int SeedsPerKind = 6;
    private static readonly TimeSpan Deadline = Workload.Deadline;

    [Theory]
    [InlineData(WindowKind.Tumbling)]
    [InlineData(WindowKind.Hopping)]
    [InlineData(WindowKind.Session)]
    public async Task Published_events_produce_exactly_the_reference_windows_and_each_revision_once(WindowKind kind)
    {
        await using var cluster = await PipelineCluster.StartAsync();
        var definition = PipelineCluster.Pipelines.Single(p => p.Windowing.Window.Kind == kind);
        await using var client = cluster.NewClient(new() { MaxBatchSize = 7 });
        var collector = await ResultCollector.StartAsync(client, definition.Name);

        var traces = Enumerable.Range(1, SeedsPerKind).Select(seed => (Key: $"seed-{seed}", Events: Events(seed, kind))).ToList();
        await Task.WhenAll(traces.Select(async t =>
        {
            foreach (var e in t.Events) await client.PublishAsync(definition.Name, ToEvent(t.Key, e));
        }));
        await client.FlushAsync();

        foreach (var (key, events) in traces)
        {
            var (expected, late) = Expected(definition, events);
            await WaitAppliedAsync(client, definition.Name, key, events.Count);
            var windows = await client.QueryAsync(definition.Name, key);
            Assert.Equal(late, windows.LateEvents);
            await collector.WaitForAsync(key, expected);
            collector.AssertEachRevisionOnceInOrder(key);
        }
    }

    [Fact]
    public async Task A_restart_on_the_same_database_continues_the_windows_and_the_final_results_are_exact()
    {
        var definition = PipelineCluster.Pipelines.Single(p => p.Name == "tumbling");
        var events = Events(77, WindowKind.Tumbling);
        var half = events.Count / 2;
        var collected = new ConcurrentQueue<ResultBatch>();
        string databasePath;

        await using (var first = await PipelineCluster.StartAsync())
        {
            databasePath = first.DatabasePath;
            await using var client = first.NewClient();
            await using var subscription = await client.SubscribeAsync(definition.Name, b => { collected.Enqueue(b); return Task.CompletedTask; });
            foreach (var e in events.Take(half)) await client.PublishAsync(definition.Name, ToEvent("restart", e));
            await client.FlushAsync();
            await WaitAppliedAsync(client, definition.Name, "restart", half);
            await WaitUntilAsync(() => Task.FromResult(!collected.IsEmpty), "results before the restart");
        }

        await using var second = await PipelineCluster.StartAsync(databasePath);
        await using var client2 = second.NewClient();
        var collector = await ResultCollector.StartAsync(client2, definition.Name);
        foreach (var batch in collected) collector.Add(batch);
        foreach (var e in events.Skip(half)) await client2.PublishAsync(definition.Name, ToEvent("restart", e));
        await client2.FlushAsync();

        await WaitAppliedAsync(client2, definition.Name, "restart", events.Count);
        var (expected, late) = Expected(definition, events);
        Assert.Equal(late, (await client2.QueryAsync(definition.Name, "restart")).LateEvents);
        await collector.WaitForAsync("restart", expected);
    }

    [Fact]
    public async Task The_same_item_delivered_twice_is_applied_once()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        var definition = PipelineCluster.Pipelines[0];
        var fields = definition.Windowing.Fields.ToArray();
        var item = PartitionBatch.ForKey("dup", definition.Partitions, Guid.NewGuid(), 1, fields, [1, 2, 3], [1, 2, 3, 4, 5, 6]);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey(definition.Name, item.Partition)));

        await stream.OnNextAsync(item);
        await stream.OnNextAsync(item); // a client retry after a lost acknowledgement
        await stream.OnNextAsync(item with { Sequence = 2, Times = [4], Values = [7, 8], KeyEnds = [1] });

        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey("tumbling", "dup"));
        // Items of one partition are applied in order: once the third is in, the repeat before it was dropped or applied.
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents >= 4, "4 applied events");
        var windows = await grain.GetWindowsAsync();
        Assert.Equal(4, windows.AppliedEvents);
        Assert.Equal(4, Assert.Single(windows.Open).EventCount);
    }

    [Fact]
    public async Task Bad_input_is_refused_with_the_problem_named_and_earlier_events_are_kept()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        await using var client = cluster.NewClient();
        var good = new PipelineEvent("k", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 });
        await client.PublishAsync("tumbling", good);

        var unknown = await Assert.ThrowsAsync<Client.UnknownPipelineException>(() => client.PublishAsync("payments", good));
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
    public async Task Typed_records_published_through_selectors_arrive_as_an_async_stream_of_results()
    {
        await using var cluster = await PipelineCluster.StartAsync();
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
    }

    private sealed record Reading(string Sensor, DateTimeOffset At, double Value);

    /// <summary>Collects a pipeline's results per key, as a consumer would upsert them.</summary>
    private sealed class ResultCollector
    {
        private readonly ConcurrentDictionary<string, List<WindowResult>> _byKey = new();

        public static async Task<ResultCollector> StartAsync(Client.PipelineClient client, string pipeline)
        {
            var collector = new ResultCollector();
            await client.SubscribeAsync(pipeline, batch =>
            {
                collector.Add(batch);
                return Task.CompletedTask;
            });
            return collector;
        }

        public void Add(ResultBatch batch)
        {
            var list = _byKey.GetOrAdd(batch.Key, _ => []);
            lock (list) list.AddRange(batch.Results);
        }

        private Dictionary<(long, long), WindowResult> View(string key)
        {
            var view = new Dictionary<(long, long), WindowResult>();
            if (!_byKey.TryGetValue(key, out var list)) return view;
            lock (list)
            {
                foreach (var r in list.Where(r => r.Kind != ResultKind.Partial))
                {
                    if (r.Kind == ResultKind.Retraction) view.Remove((r.Start, r.End));
                    else view[(r.Start, r.End)] = r;
                }
            }

            return view;
        }

        public async Task WaitForAsync(string key, Dictionary<(long, long), ReferenceResult> expected)
        {
            string? difference = null;
            try
            {
                await WaitUntilAsync(() => Task.FromResult((difference = Difference(View(key), expected)) is null), $"results of '{key}'");
            }
            catch (TimeoutException)
            {
                Assert.Fail($"results of '{key}' differ from the reference: {difference}");
            }
        }

        public void AssertEachRevisionOnceInOrder(string key)
        {
            var list = _byKey.GetValueOrDefault(key) ?? [];
            lock (list)
            {
                foreach (var window in list.GroupBy(r => (r.Start, r.End)))
                {
                    var revisions = window.Select(r => r.Revision).ToList();
                    Assert.True(revisions.SequenceEqual(revisions.Order()) && revisions.Distinct().Count() == revisions.Count,
                        $"window [{window.Key.Start}, {window.Key.End}) of '{key}' arrived with revisions {string.Join(", ", revisions)}");
                }
            }
        }
    }
}
