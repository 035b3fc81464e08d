using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.Pipeline.Hosting;

/// <summary>How a silo stores state and streams events.</summary>
public sealed class PipelineSiloOptions
{
    /// <summary>The pipelines to run (from <see cref="PipelineBuilder"/> or <see cref="PipelineConfiguration.Read"/>).</summary>
    public List<PipelineDefinition> Pipelines { get; } = [];

    /// <summary>Custom aggregators the pipelines may name.</summary>
    public AggregatorRegistry Registry { get; set; } = AggregatorRegistry.Default;

    /// <summary>Embedded mode: the SQLite file that keeps grain state across restarts.</summary>
    public string DatabasePath { get; set; } = Path.Combine("data", "pipeline.db");

    /// <summary>
    /// How often a key grain writes its state at most (see <see cref="KeyGrainOptions.StateWriteInterval"/>); zero
    /// writes after every batch. Embedded default: 1 second.
    /// </summary>
    public TimeSpan StateWriteInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Stream queues (memory streams in embedded mode).</summary>
    public int StreamQueues { get; set; } = 8;
}

/// <summary>The one place that turns pipeline options into Orleans providers.</summary>
public static class PipelineHostingExtensions
{
    /// <summary>
    /// Embedded mode: memory streams, grain state in a local SQLite file (<see cref="PipelineSiloOptions.DatabasePath"/>),
    /// and the pipelines' grains. Validates every pipeline first and throws one <see cref="ArgumentException"/> listing
    /// all problems.
    /// </summary>
    public static ISiloBuilder AddPipelineSilo(this ISiloBuilder silo, Action<PipelineSiloOptions> configure)
    {
        var options = new PipelineSiloOptions();
        configure(options);
        var catalog = new PipelineCatalog(options.Pipelines, options.Registry);
        var connectionString = SqliteStateSchema.Ensure(options.DatabasePath);

        silo.Services.AddSingleton(catalog);
        silo.Services.AddSingleton(TimeProvider.System);
        silo.Services.AddSingleton(new KeyGrainOptions { StateWriteInterval = options.StateWriteInterval });
        silo.Services.AddSingleton<IResultSink, NoResultSink>();
        silo.AddAdoNetGrainStorage(PipelineStorage.StateStorage, (OptionsBuilder<AdoNetGrainStorageOptions> builder) =>
            builder.Configure<Serializer>((o, serializer) =>
            {
                o.Invariant = "System.Data.SQLite";
                o.ConnectionString = connectionString;
                o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            }));
        silo.AddMemoryGrainStorage("PubSubStore");
        silo.AddMemoryStreams(PipelineNames.StreamProvider, streams =>
        {
            streams.ConfigurePartitioning(options.StreamQueues);
            streams.ConfigurePullingAgent(agent => agent.Configure(o => o.MaxEventDeliveryTime = TimeSpan.FromSeconds(30)));
        });
        silo.AddMemoryStreams(PipelineNames.ResultsStreamProvider, streams => streams.ConfigurePartitioning(options.StreamQueues));
        return silo;
    }
}
