using Orleans.Pipeline.Client;
using Orleans.Runtime;
using Orleans.Streams;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Tests.Reference;
using Orleans.TestingHost;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// PostgreSQL mode with several silos, beyond what every mode promises (Scenarios/): random traces published through
/// the SDK end up in the results table exactly as the brute-force reference computes them while a silo stops or dies
/// mid-stream, and windows only time closes still close after their silo dies.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterModeTests(PostgresServer postgres)
{
    private const int SeedsPerKind = 3;

    private static List<(PipelineDefinition Pipeline, string Key, List<EventStep> Events)> Traces(int firstSeed) =>
        PipelineCluster.Pipelines
            .SelectMany(p => Enumerable.Range(firstSeed, SeedsPerKind).Select(seed => (p, $"seed-{seed}", Events(seed, p.Windowing.Window.Kind))))
            .ToList();

    [Fact]
    public async Task Three_silos_write_exactly_the_reference_windows_to_the_results_table_while_one_stops_mid_stream()
    {
        await using var cluster = await PostgresPipelineCluster.StartAsync(await postgres.NewMigratedDatabaseAsync());
        var traces = Traces(firstSeed: 1);

        await PublishAsync(cluster, traces, midStream: () => cluster.Cluster.StopSiloAsync(cluster.Cluster.Silos[1]));

        Assert.Equal(2, cluster.Cluster.GetActiveSilos().Count());
        await AssertResultsTableMatchesReferenceAsync(cluster, traces);
    }

    [Fact]
    public async Task A_silo_killed_mid_stream_loses_nothing_and_counts_nothing_twice()
    {
        await using var cluster = await PostgresPipelineCluster.StartAsync(await postgres.NewMigratedDatabaseAsync());
        var traces = Traces(firstSeed: 11);

        await PublishAsync(cluster, traces, midStream: () => cluster.Cluster.KillSiloAsync(cluster.Cluster.Silos[2]));

        await AssertResultsTableMatchesReferenceAsync(cluster, traces);
    }

    [Fact]
    public async Task Windows_that_only_time_closes_still_close_after_their_silo_dies_without_another_event()
    {
        await using var cluster = await PostgresPipelineCluster.StartAsync(await postgres.NewMigratedDatabaseAsync(), silos: 2);
        await using var client = cluster.NewClient();
        foreach (var time in new long[] { 1, 3, 5 })
            await client.PublishAsync("idle", new PipelineEvent("quiet", time, new Dictionary<string, double> { ["a"] = 2, ["b"] = 0 }));
        await client.FlushAsync();
        await WaitAppliedAsync(client, "idle", "quiet", 3);
        Assert.Empty(await cluster.ReadResultsAsync("idle", "quiet"));

        // The key's silo dies before the idle timeout (3 s) closes the window; no event will come to reactivate it.
        var grain = cluster.Cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey("idle", "quiet"));
        var host = await cluster.Cluster.Client.GetGrain<IManagementGrain>(0).GetActivationAddress(grain);
        await cluster.Cluster.KillSiloAsync(cluster.Cluster.Silos.Single(s => s.SiloAddress.Equals(host)));

        await WaitUntilAsync(async () => (await cluster.ReadResultsAsync("idle", "quiet")).TryGetValue((0, 10), out var window) && window.Kind == ResultKind.Final,
            "the window closed on the surviving silo");
        var closed = (await cluster.ReadResultsAsync("idle", "quiet"))[(0, 10)];
        Assert.Equal((3L, 6.0), (closed.EventCount, closed.Values[1]));
    }

    [Fact]
    public async Task Items_for_a_pipeline_no_silo_runs_are_kept_as_dead_letters_one_per_partition_item_and_their_producer_goes_on()
    {
        await using var cluster = await PostgresPipelineCluster.StartAsync(await postgres.NewMigratedDatabaseAsync(), silos: 1);
        var fields = PipelineCluster.Pipelines[0].Windowing.Fields.ToArray();
        // (What a key cannot apply is a scenario of every mode: Scenarios/PipelineScenarios.cs.)
        // One producer's item 1 of two partitions (a producer numbers its items per partition), as a silo that runs the
        // pipeline would send them to one that does not (a rolling upgrade gone wrong).
        var producer = Guid.NewGuid();
        var first = PartitionBatch.ForKey("raw", PipelineCluster.Pipelines[0].Partitions, producer, 1, fields, [5], [1, 1]);
        var other = Enumerable.Range(0, 1_000).Select(i => PartitionBatch.ForKey($"raw-{i}", PipelineCluster.Pipelines[0].Partitions, producer, 1, fields, [5], [1, 1]))
            .First(b => b.Partition != first.Partition);
        foreach (var item in new[] { first, other })
        {
            await cluster.Cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
                .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey("retired", item.Partition)))
                .OnNextAsync(item);
        }

        await WaitUntilAsync(async () => await cluster.ScalarAsync("SELECT count(*) FROM pipeline_all_dead_letters") == 2, "two dead letters");
        Assert.Equal(2, await cluster.ScalarAsync(
            "SELECT count(*) FROM pipeline_all_dead_letters WHERE pipeline = 'retired' AND reason = 'unknown-pipeline' AND detail LIKE '%1 events not applied%'"));
        // The producer is not left waiting for them: each partition counts its item done.
        foreach (var item in new[] { first, other })
        {
            var partition = cluster.Cluster.Client.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey("retired", item.Partition));
            Assert.Equal(1, await partition.WaitForAppliedAsync(producer, 1, TimeSpan.FromSeconds(30)));
        }
    }

    [Fact]
    public async Task The_pipelines_a_silo_runs_are_recorded_with_their_output_names()
    {
        await using var cluster = await PostgresPipelineCluster.StartAsync(await postgres.NewMigratedDatabaseAsync(), silos: 1);

        foreach (var pipeline in PipelineCluster.Pipelines.Append(PostgresPipelineCluster.Idle))
        {
            Assert.Equal(1, await cluster.ScalarAsync(
                "SELECT count(*) FROM pipeline_definitions WHERE pipeline = @p AND output_names = @names AND definition->>'Name' = @p",
                ("p", pipeline.Name), ("names", pipeline.OutputNames().ToArray())));
        }
    }

    /// <summary>Publishes every trace in order per key, running <paramref name="midStream"/> once half is sent.</summary>
    private static async Task PublishAsync(PostgresPipelineCluster cluster, List<(PipelineDefinition Pipeline, string Key, List<EventStep> Events)> traces, Func<Task> midStream)
    {
        await using var client = cluster.NewClient(new PipelineClientOptions { MaxBatchSize = 7, Linger = TimeSpan.FromMilliseconds(5) });
        var total = traces.Sum(t => t.Events.Count);
        var sent = 0;
        var halfway = new TaskCompletionSource();
        var publishing = Task.WhenAll(traces.Select(async t =>
        {
            foreach (var e in t.Events)
            {
                await client.PublishAsync(t.Pipeline.Name, ToEvent(t.Key, e));
                if (Interlocked.Increment(ref sent) == total / 2) halfway.TrySetResult();
                await Task.Yield();
            }
        }));
        await halfway.Task;
        await midStream();
        await publishing;
        await client.FlushAsync();
    }

    private static async Task AssertResultsTableMatchesReferenceAsync(PostgresPipelineCluster cluster, List<(PipelineDefinition Pipeline, string Key, List<EventStep> Events)> traces)
    {
        foreach (var (pipeline, key, events) in traces)
        {
            var (expected, late) = Expected(pipeline, events);
            string? difference = null;
            long lateRows = -1;
            try
            {
                await WaitUntilAsync(async () =>
                {
                    difference = Difference(await cluster.ReadResultsAsync(pipeline.Name, key), expected);
                    lateRows = await cluster.ScalarAsync("SELECT count(*) FROM pipeline_late_events WHERE pipeline = @p AND key = @k", ("p", pipeline.Name), ("k", key));
                    return difference is null && lateRows == late;
                }, $"results of {pipeline.Name}/{key}");
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{pipeline.Name}/{key}: the results table differs from the reference: {difference ?? "(windows equal)"}; late events {lateRows}, reference {late}");
            }
        }

        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM pipeline_dead_letters"));
        Assert.Equal(0, await cluster.ScalarAsync("SELECT count(*) FROM orleans_stream_dead_letters"));
    }
}
