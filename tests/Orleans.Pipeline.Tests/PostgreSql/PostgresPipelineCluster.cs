using System.Reflection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.Windowing;
using Orleans.TestingHost;
using Orleans.Pipeline.PostgreSql;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// An in-process cluster in PostgreSQL mode: membership, grain state, reminders, durable event queues and the
/// results table all in the given database. Silos and client use the real ADO.NET membership (the harness's own
/// in-memory membership is switched off).
/// </summary>
public sealed class PostgresPipelineCluster : IAsyncDisposable
{
    public const string ServiceId = "pipeline-pg-tests";

    /// <summary>Short, so that a killed silo's leased events come back quickly.</summary>
    public static readonly TimeSpan VisibilityTimeout = TimeSpan.FromSeconds(4);

    private readonly PipelineDefinition[] _pipelines;

    private PostgresPipelineCluster(InProcessTestCluster cluster, string connectionString, PipelineDefinition[] pipelines)
    {
        Cluster = cluster;
        ConnectionString = connectionString;
        _pipelines = pipelines;
    }

    /// <summary>Windows only time closes: 10 ms tumbling windows, closed after 3 s without events.</summary>
    public static PipelineDefinition Idle { get; } = new("idle", new WindowingDefinition(
        WindowSpec.Tumbling(10), [Windowing.Aggregation.AggregationSpec.Count(), Windowing.Aggregation.AggregationSpec.Sum("a")], IdleTimeoutMs: 3_000));

    public InProcessTestCluster Cluster { get; }

    public string ConnectionString { get; }

    public static async Task<PostgresPipelineCluster> StartAsync(string connectionString, short silos = 3, IEnumerable<PipelineDefinition>? extra = null)
    {
        PipelineDefinition[] pipelines = [.. PipelineCluster.Pipelines, Idle, .. extra ?? []];
        var options = new PipelineClusterOptions
        {
            Mode = PipelineMode.PostgreSql,
            ConnectionString = connectionString,
            ServiceId = ServiceId,
            StreamQueues = 4,
            Streams = new DurableStreamOptions { VisibilityTimeout = VisibilityTimeout, PollInterval = TimeSpan.FromMilliseconds(50) },
        };
        var builder = new InProcessTestClusterBuilder(silos);
        builder.Options.ServiceId = ServiceId;
        builder.Options.ClusterId = $"pg-{Guid.NewGuid():N}";
        builder.Options.ConfigureFileLogging = false;
        // The harness replaces membership with its own in-memory table unless this (internal) switch is off.
        typeof(InProcessTestClusterOptions)
            .GetProperty("UseTestClusterMembership", BindingFlags.Instance | BindingFlags.NonPublic)!
            .SetValue(builder.Options, false);
        var tuned = PostgresConnections.Tune(connectionString);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.UseAdoNetClustering(o =>
            {
                o.Invariant = PostgresConnections.Invariant;
                o.ConnectionString = tuned;
            });
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            });
            silo.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = TimeSpan.FromSeconds(1));
            silo.AddPipelineSilo(o =>
            {
                o.Pipelines.AddRange(pipelines);
                o.Cluster = options;
                o.SequenceGapTimeout = TimeSpan.FromSeconds(30);
                o.ReminderPeriod = TimeSpan.FromSeconds(2);
            });
        });
        builder.ConfigureClient(client =>
        {
            client.UseAdoNetClustering(o =>
            {
                o.Invariant = PostgresConnections.Invariant;
                o.ConnectionString = tuned;
            });
            client.AddPostgresEventStreams(options).AddPipelineResultStreams(options);
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return new PostgresPipelineCluster(cluster, connectionString, pipelines);
    }

    public PipelineClient NewClient(PipelineClientOptions? options = null) => new(Cluster.Client, options);

    public Task<Dictionary<(long, long), WindowResult>> ReadResultsAsync(string pipeline, string key) =>
        PostgresQueries.ReadResultsAsync(ConnectionString, _pipelines.Single(p => p.Name == pipeline), key);

    public Task<long> ScalarAsync(string sql, params (string Name, object Value)[] parameters) =>
        PostgresQueries.ScalarAsync(ConnectionString, sql, parameters);

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}
