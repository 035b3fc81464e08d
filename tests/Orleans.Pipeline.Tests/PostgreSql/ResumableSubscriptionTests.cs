using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.Gateway;
using Orleans.Pipeline.Windowing;
using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// In cluster mode a gateway subscriber can resume: from change 0 it gets every stored window (folded, exactly the
/// reference), and from the last change it saw, only what changed since.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ResumableSubscriptionTests(PostgresServer postgres)
{
    [Fact]
    public async Task A_subscriber_resumes_from_a_change_id_and_gets_exactly_the_stored_results_after_it()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await using var cluster = await PostgresPipelineCluster.StartAsync(database, silos: 1);
        var options = new PipelineClusterOptions { Mode = PipelineMode.PostgreSql, ConnectionString = database };
        await using var gateway = await GatewayHost.StartAsync(cluster.Cluster.Client, options, owned: null);
        using var client = gateway.NewClient();
        var pipeline = PipelineCluster.Pipelines.Single(p => p.Name == "session");
        var events = Events(41, WindowKind.Session);
        var (expected, _) = Expected(pipeline, events);
        foreach (var chunk in events.Chunk(20)) await client.PublishAsync("session", chunk.Select(e => ToGatewayEvent("first", e)));
        await WaitUntilAsync(async () => Difference(await cluster.ReadResultsAsync("session", "first"), expected) is null, "the first key's results stored");

        var fromStart = await ReadUntilAsync(client, after: 0, view => Difference(view, expected) is null, pipeline);
        Assert.Null(Difference(fromStart.View, expected));

        var second = Events(42, WindowKind.Session);
        var (expectedSecond, _) = Expected(pipeline, second);
        foreach (var chunk in second.Chunk(20)) await client.PublishAsync("session", chunk.Select(e => ToGatewayEvent("second", e)));
        var resumed = await ReadUntilAsync(client, fromStart.LastChange, view => Difference(view, expectedSecond) is null, pipeline);

        Assert.Null(Difference(resumed.View, expectedSecond));
        Assert.DoesNotContain("first", resumed.Keys);
    }

    private static async Task<(Dictionary<(long, long), WindowResult> View, long LastChange, HashSet<string> Keys)> ReadUntilAsync(
        PipelineGatewayClient client, long after, Func<Dictionary<(long, long), WindowResult>, bool> done, PipelineDefinition pipeline)
    {
        var outputs = pipeline.OutputNames();
        var view = new Dictionary<(long, long), WindowResult>();
        var keys = new HashSet<string>();
        var last = after;
        using var cancel = new CancellationTokenSource(Deadline);
        await foreach (var batch in client.SubscribeAsync(pipeline.Name, afterChangeId: after, cancellationToken: cancel.Token))
        {
            keys.Add(batch.Key);
            Assert.True(batch.ChangeId > last, $"change {batch.ChangeId} after {last}: changes must arrive in order");
            last = batch.ChangeId;
            foreach (var r in batch.Results) WireView.Apply(view, r, outputs);
            if (done(view)) break;
        }

        return (view, last, keys);
    }
}
