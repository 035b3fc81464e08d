using Orleans.Pipeline.Client;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.Scenarios;

/// <summary>
/// A running cluster of one mode, as the scenarios see it: what a mode must offer to run <see cref="PipelineScenarios"/>.
/// Adding a mode (a transport, a store) means implementing this and one small subclass of the scenarios.
/// </summary>
public interface IScenarioCluster : IAsyncDisposable
{
    IClusterClient Client { get; }

    PipelineClient NewClient(PipelineClientOptions? options = null);

    /// <summary>The windows a consumer of this mode holds for the key: the results table, or what the live feed delivered.</summary>
    Task<Dictionary<(long, long), WindowResult>> ResultsAsync(string pipeline, string key);

    /// <summary>Late events the mode recorded for the key (the late-events table, or the key's count).</summary>
    Task<long> LateEventsRecordedAsync(string pipeline, string key);

    /// <summary>Dead letters the mode stored for the key with this reason; null when it stores none (embedded mode counts and logs them).</summary>
    Task<long?> DeadLettersStoredAsync(string pipeline, string key, string reason);

    /// <summary>
    /// Stops the whole cluster the way the mode promises to survive (embedded: a graceful stop, state in its file;
    /// PostgreSQL: every silo killed) and starts it again on the same storage. The old instance is disposed.
    /// </summary>
    Task<IScenarioCluster> RestartAsync();
}

/// <summary>Pipelines the scenarios use besides <see cref="PipelineCluster.Pipelines"/>.</summary>
public static class ScenarioPipelines
{
    /// <summary>One window per key for the whole test (an hour), so every applied event is in a window that stays queryable.</summary>
    public static readonly PipelineDefinition Flood = new(
        "flood",
        new WindowingDefinition(WindowSpec.Tumbling(3_600_000), [Windowing.Aggregation.AggregationSpec.Count(), Windowing.Aggregation.AggregationSpec.Sum("amount")]),
        Partitions: 8);

    /// <summary>
    /// Publishes <paramref name="events"/> events of the <see cref="Flood"/> pipeline over <paramref name="keys"/> random
    /// keys (seeded), each with amount 1, as fast as the client takes them; returns how many each key got.
    /// </summary>
    public static async Task<long[]> PublishFloodAsync(Client.PipelineClient client, int keys, int events, int seed)
    {
        var random = new Random(seed);
        var perKey = new long[keys];
        var start = DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();
        for (var i = 0; i < events; i++)
        {
            var key = random.Next(keys);
            perKey[key]++;
            // No exception may reach the publisher, however far behind the grains are.
            await client.PublishAsync(Flood.Name, new PipelineEvent($"k{key}", start + random.Next(3_000_000), new Dictionary<string, double> { ["amount"] = 1 }));
        }

        return perKey;
    }
}
