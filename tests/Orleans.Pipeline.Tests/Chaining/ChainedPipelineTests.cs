using Orleans.Pipeline.Client;
using Orleans.Streams;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Tests.Chaining;

/// <summary>
/// Pipelines that read other pipelines' results, end to end in embedded mode: on seeded traces with out-of-order and
/// late events, every downstream window's latest result equals a brute-force evaluation of the chain.
/// </summary>
public sealed class ChainedPipelineTests
{
    public static TheoryData<string> Plans => ["global-max", "region-average", "hot-items", "top-items"];

    internal static ChainPlan Plan(string name) => name switch
    {
        "global-max" => ChainPlan.GlobalMax("gm"),
        "region-average" => ChainPlan.RegionAverage("ra"),
        "top-items" => ChainPlan.TopItems("ti"),
        _ => ChainPlan.HotItems("hi"),
    };

    [Theory]
    [MemberData(nameof(Plans))]
    public async Task Downstream_windows_equal_a_brute_force_evaluation_of_the_chain_including_late_upstream_events(string name)
    {
        var plan = Plan(name);
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([plan.Upstream, plan.Downstream]));
        var client = cluster.NewClient();
        for (var seed = 1; seed <= 3; seed++)
        {
            // Each seed later than the last one's flush, so its windows are new ones.
            var start = 1_000_000_000L + seed * 1_000_000L;
            var trace = plan.Trace(seed, start, 2_000);
            var expected = plan.BruteForce(trace);
            // In small steps, each applied before the next: many items per partition, so keys' windows close on
            // items they have no events in (the partition's watermark), not only on their own.
            foreach (var chunk in trace.Chunk(50))
            {
                await client.PublishAsync(plan.Upstream.Name, chunk);
                await client.WaitUntilAppliedAsync();
            }

            await client.PublishAsync(plan.Upstream.Name, plan.Flush(trace.Max(e => e.TimeMs)));
            await client.WaitUntilAppliedAsync();
            await ChainAssert.ResultsEqualAsync(plan, expected, key => client.QueryAsync(plan.Downstream.Name, key), start, trace.Max(e => e.TimeMs) + 5_000);
        }
    }

    [Theory]
    [InlineData("global-max")]
    [InlineData("hot-items")]
    public async Task Without_late_events_every_downstream_window_fires_once_with_every_upstream_contribution_in_it(string name)
    {
        // Out of order only within the disorder: no upstream window is revised, so a downstream window that closed
        // before all its contributions arrived would show as a second revision (or a wrong first one).
        var plan = Plan(name);
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([plan.Upstream, plan.Downstream]));
        var client = cluster.NewClient();
        const long start = 1_000_000_000L;
        var trace = plan.Trace(17, start, 2_000, lateShare: 0);
        foreach (var chunk in trace.Chunk(50))
        {
            await client.PublishAsync(plan.Upstream.Name, chunk);
            await client.WaitUntilAppliedAsync();
        }

        await client.PublishAsync(plan.Upstream.Name, plan.Flush(trace.Max(e => e.TimeMs)));
        await client.WaitUntilAppliedAsync();
        var until = trace.Max(e => e.TimeMs) + 5_000;
        await ChainAssert.ResultsEqualAsync(plan, plan.BruteForce(trace), key => client.QueryAsync(plan.Downstream.Name, key), start, until);

        var closed = (await client.QueryAsync(plan.Downstream.Name, ChainInput.AllKey)).Closed.Where(r => r.Start >= start && r.End <= until).ToList();
        Assert.NotEmpty(closed);
        Assert.All(closed, r => Assert.Equal((1, ResultKind.Final), (r.Revision, r.Kind)));
    }

    [Fact]
    public async Task Distinct_counts_across_all_keys_merge_the_keys_sketches_and_equal_the_distinct_values_of_all_events()
    {
        // Per item, the distinct users per second; across items, the users merged from the items' sketches, which
        // a count of per-item answers could not give (a user seen on two items counts once).
        var up = PipelineBuilder.Named("dx-items").Tumbling(TimeSpan.FromSeconds(1)).Disorder(TimeSpan.FromMilliseconds(ChainPlan.Disorder))
            .AllowedLateness(TimeSpan.FromMilliseconds(ChainPlan.Lateness)).Partitions(ChainPlan.Partitions).Distinct("user").Build();
        var down = PipelineBuilder.Named("dx-users").From("dx-items", "all").Tumbling(TimeSpan.FromSeconds(1))
            .AllowedLateness(TimeSpan.FromSeconds(1)).KeepClosedWindows(1000).Distinct("distinct_user").Build();
        var plan = ChainPlan.GlobalMax("dx") with { Name = "distinct users per item, then across all items", Upstream = up, Downstream = down, Field = "user" };
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([up, down]));
        var client = cluster.NewClient();
        const long start = 1_000_000_000L;
        var random = new Random(5);
        var trace = plan.Trace(5, start, 2_000)
            .Select(e => e with { Fields = new Dictionary<string, double> { ["user"] = random.Next(0, 300) } }).ToList();
        foreach (var chunk in trace.Chunk(50))
        {
            await client.PublishAsync(up.Name, chunk);
            await client.WaitUntilAppliedAsync();
        }

        await client.PublishAsync(up.Name, plan.Flush(trace.Max(e => e.TimeMs)));
        await client.WaitUntilAppliedAsync();

        var expected = trace.GroupBy(e => e.TimeMs - e.TimeMs % 1_000)
            .ToDictionary(g => (ChainInput.AllKey, g.Key, g.Key + 1_000), g => new ChainExpected([g.Select(e => e.Fields["user"]).Distinct().Count()]));
        Assert.Contains(expected.Values, e => e.Values[0] > 100); // more users per second than any one item sees
        await ChainAssert.ResultsEqualAsync(plan, expected, key => client.QueryAsync(down.Name, key), start, trace.Max(e => e.TimeMs) + 5_000);
    }

    [Fact]
    public async Task When_the_input_goes_quiet_its_idle_timeout_closes_the_chained_windows_too_without_another_event()
    {
        // Events up to now, then nothing: no partition's watermark will pass the last windows. The upstream's idle
        // timeout closes its keys' windows; the chain's watermark then follows the clock, and the last downstream
        // windows close with every contribution in them. The timeout is longer than a busy machine may take between
        // two of the chunks below: a key quiet for longer than it between chunks is idle, and its next events late.
        var up = PipelineBuilder.Named("quiet-readings").Tumbling(TimeSpan.FromSeconds(1)).Partitions(ChainPlan.Partitions)
            .IdleTimeout(TimeSpan.FromSeconds(2)).Sum("v").Build();
        var down = PipelineBuilder.Named("quiet-total").From("quiet-readings", "all").Tumbling(TimeSpan.FromSeconds(1))
            .KeepClosedWindows(1000).Sum("sum_v").Build();
        var plan = ChainPlan.GlobalMax("quiet") with { Name = "sum per sensor, then the total, closed by the idle timeout", Upstream = up, Downstream = down, Field = "v" };
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([up, down]));
        var client = cluster.NewClient();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var random = new Random(9);
        var events = Enumerable.Range(0, 400)
            .Select(i => new PipelineEvent($"sensor-{random.Next(12)}", now - 3_000 + i * 5, new Dictionary<string, double> { ["v"] = random.Next(1, 10) }))
            .ToList();
        foreach (var chunk in events.Chunk(50))
        {
            await client.PublishAsync(up.Name, chunk);
            await client.WaitUntilAppliedAsync();
        }

        var expected = events.GroupBy(e => e.TimeMs - e.TimeMs % 1_000)
            .ToDictionary(g => (ChainInput.AllKey, g.Key, g.Key + 1_000), g => new ChainExpected([g.Sum(e => e.Fields["v"])]));
        await ChainAssert.ResultsEqualAsync(plan, expected, key => client.QueryAsync(down.Name, key), 0, long.MaxValue);
    }

    [Fact]
    public async Task A_chained_pipeline_is_listed_with_its_input_and_refuses_published_events()
    {
        var plan = ChainPlan.GlobalMax("refuse");
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([plan.Upstream, plan.Downstream]));
        var client = cluster.NewClient();

        var listed = await client.GetPipelinesAsync();
        Assert.Equal(new ChainInput(plan.Upstream.Name, "all"), listed[plan.Downstream.Name].Input);
        var refused = await Assert.ThrowsAsync<ArgumentException>(() =>
            client.PublishAsync(plan.Downstream.Name, new PipelineEvent("a", 1_000, new Dictionary<string, double> { ["max_price"] = 1 })));
        Assert.Contains($"publish to '{plan.Upstream.Name}'", refused.Message);
    }

    [Fact]
    public async Task Events_pushed_straight_onto_a_chained_pipelines_stream_are_given_up_and_their_producer_goes_on()
    {
        var plan = ChainPlan.GlobalMax("pushed");
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.Pipelines.AddRange([plan.Upstream, plan.Downstream]));
        var partition = PipelineNames.PartitionOf("a", plan.Downstream.Partitions);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(Orleans.Runtime.StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey(plan.Downstream.Name, partition)));
        var producer = Guid.NewGuid();

        await stream.OnNextAsync(PartitionBatch.ForKey("a", plan.Downstream.Partitions, producer, 1, ["max_price"], [1_000], [5]));

        var partitionGrain = cluster.Client.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey(plan.Downstream.Name, partition));
        Assert.Equal(1, await partitionGrain.WaitForAppliedAsync(producer, 1, TimeSpan.FromSeconds(30)));
        var key = await cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(plan.Downstream.Name, "a")).GetWindowsAsync();
        Assert.Equal((0L, 0), (key.AppliedEvents, key.Open.Length));
    }

    [Theory]
    [InlineData("missing", "key", "input pipeline 'missing' is not defined")]
    [InlineData("up", "hash:0", "number of buckets")]
    [InlineData("up", "field:nope", "input key 'field:nope' reads a value")]
    [InlineData("up", "sometimes", "is not one of key, all")]
    public void Chains_that_cannot_run_are_refused_at_start_up_with_the_reason(string input, string keyBy, string reason)
    {
        var up = PipelineBuilder.Named("up").Tumbling(TimeSpan.FromSeconds(1)).Max("price").Build();
        var down = new PipelineDefinition("down", new WindowingDefinition(WindowSpec.Tumbling(1000), [AggregationSpec.Max("max_price")]), Input: new ChainInput(input, keyBy));

        var error = Assert.Throws<ArgumentException>(() => new PipelineCatalog([up, down]));

        Assert.Contains("pipeline 'down'", error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void Cycles_deeper_chains_session_inputs_and_unknown_fields_are_refused()
    {
        var up = PipelineBuilder.Named("up").Tumbling(TimeSpan.FromSeconds(1)).Max("price").Build();
        var sessions = PipelineBuilder.Named("sessions").Session(TimeSpan.FromSeconds(1)).Max("price").Build();
        var down = PipelineBuilder.Named("down").From("up", "all").Tumbling(TimeSpan.FromSeconds(1)).Max("max_price").Build();
        var downer = PipelineBuilder.Named("downer").From("down", "all").Tumbling(TimeSpan.FromSeconds(1)).Max("max_max_price").Build();
        var a = new PipelineDefinition("a", new WindowingDefinition(WindowSpec.Tumbling(1000), [AggregationSpec.Count()]), Input: new ChainInput("b"));
        var b = new PipelineDefinition("b", new WindowingDefinition(WindowSpec.Tumbling(1000), [AggregationSpec.Count()]), Input: new ChainInput("a"));
        var fromSessions = PipelineBuilder.Named("from-sessions").From("sessions").Tumbling(TimeSpan.FromSeconds(1)).Max("max_price").Build();
        var wrongField = PipelineBuilder.Named("wrong-field").From("up").Tumbling(TimeSpan.FromSeconds(1)).Sum("price").Build();

        Assert.Contains("chains are one level deep", Assert.Throws<ArgumentException>(() => new PipelineCatalog([up, down, downer])).Message);
        Assert.Contains("(a cycle)", Assert.Throws<ArgumentException>(() => new PipelineCatalog([a, b])).Message);
        Assert.Contains("tumbling or hopping windows in event time", Assert.Throws<ArgumentException>(() => new PipelineCatalog([sessions, fromSessions])).Message);
        Assert.Contains("reads 'price', which its input 'up' does not produce (it produces max_price)",
            Assert.Throws<ArgumentException>(() => new PipelineCatalog([up, wrongField])).Message);
        Assert.Contains("not sessions", Assert.Throws<ArgumentException>(() =>
            PipelineBuilder.Named("x").From("up").Session(TimeSpan.FromSeconds(1)).Max("max_price").Build()).Message);
    }
}

/// <summary>Waiting for and comparing a chained pipeline's results with the brute force.</summary>
internal static class ChainAssert
{
    /// <summary>
    /// Waits (up to a minute) until every expected downstream window from <paramref name="from"/> to
    /// <paramref name="until"/> has a closed result equal to the brute force, and no other window in that span has one;
    /// fails listing the differences otherwise.
    /// </summary>
    public static async Task ResultsEqualAsync(ChainPlan plan, Dictionary<(string Key, long Start, long End), ChainExpected> expected,
        Func<string, Task<KeyWindows>> query, long from, long until)
    {
        var wanted = expected.Where(e => e.Key.Start >= from && e.Key.End <= until).ToDictionary(e => e.Key, e => e.Value);
        var keys = wanted.Keys.Select(k => k.Key).Distinct().ToList();
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        var delay = 20;
        List<string> differences;
        while (true)
        {
            var actual = new Dictionary<(string, long, long), WindowResult>();
            foreach (var key in keys)
            {
                foreach (var r in (await query(key)).Closed)
                {
                    if (r.Start >= from && r.End <= until) actual[(key, r.Start, r.End)] = r;
                }
            }

            differences = [.. wanted.Select(w => actual.TryGetValue(w.Key, out var a) ? (w.Value.Difference(a) is { } d ? $"{w.Key}: {d}" : null) : $"{w.Key}: expected {w.Value}, got nothing")
                    .OfType<string>(),
                .. actual.Keys.Where(a => !wanted.ContainsKey(a)).Select(a => $"{a}: not expected, got {actual[a]}")];
            if (differences.Count == 0 || DateTime.UtcNow > deadline) break;
            await Task.Delay(delay);
            delay = Math.Min(delay * 2, 500);
        }

        Assert.True(differences.Count == 0, $"{plan.Name}: {differences.Count} of {wanted.Count} windows differ: {string.Join("; ", differences.Take(10))}");
    }
}
