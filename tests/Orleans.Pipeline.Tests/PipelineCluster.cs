using Microsoft.Extensions.DependencyInjection;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Tests.Reference;
using Orleans.TestingHost;

namespace Orleans.Pipeline.Tests;

/// <summary>An in-process cluster of pipeline silos on an embedded database of its own.</summary>
public sealed class PipelineCluster : IAsyncDisposable
{
    private PipelineCluster(InProcessTestCluster cluster, string databasePath)
    {
        Cluster = cluster;
        DatabasePath = databasePath;
    }

    public InProcessTestCluster Cluster { get; }

    public string DatabasePath { get; }

    public IClusterClient Client => Cluster.Client;

    /// <summary>Fixed pipelines for the tests: every window kind with every built-in aggregation.</summary>
    public static PipelineDefinition[] Pipelines { get; } =
    [
        Define("tumbling", WindowSpec.Tumbling(10)),
        Define("hopping", WindowSpec.Hopping(12, 4)),
        Define("session", WindowSpec.Session(8)),
    ];

    private static PipelineDefinition Define(string name, WindowSpec window) =>
        new(name, new WindowingDefinition(window, TraceGenerator.AllAggregations, MaxOutOfOrdernessMs: 5, AllowedLatenessMs: 10));

    public static async Task<PipelineCluster> StartAsync(string? databasePath = null, short silos = 1, TimeSpan? sequenceGapTimeout = null, Action<PipelineSiloOptions>? configure = null, TimeProvider? time = null)
    {
        databasePath ??= Path.Combine(Path.GetTempPath(), "orleans-pipeline-tests", Guid.NewGuid().ToString("N"), "pipeline.db");
        var builder = new InProcessTestClusterBuilder(silos);
        builder.Options.ServiceId = "pipeline-tests";
        builder.Options.ConfigureFileLogging = false;
        builder.ConfigureSilo((_, silo) => silo.AddPipelineSilo(options =>
        {
            options.Pipelines.AddRange(Pipelines);
            options.DatabasePath = databasePath;
            options.SequenceGapTimeout = sequenceGapTimeout;
            configure?.Invoke(options);
        }));
        if (time is not null) builder.ConfigureSilo((_, silo) => silo.Services.AddKeyedSingleton(Grains.PipelineTime.Key, time));
        builder.ConfigureClient(client => client.AddPipelineClient());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return new PipelineCluster(cluster, databasePath);
    }

    public PipelineClient NewClient(PipelineClientOptions? options = null) => new(Client, options);

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}
