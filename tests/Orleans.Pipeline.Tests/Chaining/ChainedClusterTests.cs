using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.Chaining;

/// <summary>
/// Chained pipelines in PostgreSQL mode with three silos, one killed mid-stream: the downstream results table still
/// equals the brute-force evaluation of the chain (nothing the killed silo had applied upstream is lost on the way
/// downstream, and nothing redelivered is counted twice).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ChainedClusterTests(PostgresServer postgres)
{
    [Theory]
    [InlineData("global-max")]
    [InlineData("region-average")]
    [InlineData("top-items")]
    public async Task Chained_results_stay_exact_when_a_silo_is_killed_mid_stream(string name)
    {
        var plan = ChainedPipelineTests.Plan(name);
        await using var cluster = await PostgresPipelineCluster.StartAsync(await postgres.NewMigratedDatabaseAsync(), extra: [plan.Upstream, plan.Downstream]);
        await using var client = cluster.NewClient(new PipelineClientOptions { MaxBatchSize = 20, Linger = TimeSpan.FromMilliseconds(2) });
        const long start = 1_000_000_000L;
        var trace = plan.Trace(seed: 7, start, 1_500);
        var expected = plan.BruteForce(trace);

        var chunks = trace.Chunk(50).ToList();
        for (var i = 0; i < chunks.Count; i++)
        {
            await client.PublishAsync(plan.Upstream.Name, chunks[i]);
            if (i == chunks.Count / 2)
            {
                // Killed with items of every partition in flight: they come back after the visibility timeout.
                await client.FlushAsync();
                await cluster.Cluster.KillSiloAsync(cluster.Cluster.Silos[2]);
            }
            else
            {
                await client.WaitUntilAppliedAsync();
            }
        }

        await client.WaitUntilAppliedAsync();
        await client.PublishAsync(plan.Upstream.Name, plan.Flush(trace.Max(e => e.TimeMs)));
        await client.WaitUntilAppliedAsync();

        await ChainAssert.ResultsEqualAsync(plan, expected, async key =>
        {
            var table = await cluster.ReadResultsAsync(plan.Downstream.Name, key);
            return new KeyWindows([], [.. table.Values], 0, 0, 0, 0);
        }, start, trace.Max(e => e.TimeMs) + 5_000);
    }
}
