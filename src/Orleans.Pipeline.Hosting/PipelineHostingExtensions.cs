using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.Streams;

namespace Orleans.Pipeline.Hosting;

/// <summary>How a silo runs its pipelines, stores state and streams events.</summary>
public sealed class PipelineSiloOptions
{
    /// <summary>The pipelines to run (from <see cref="PipelineBuilder"/> or <see cref="PipelineConfiguration.Read"/>).</summary>
    public List<PipelineDefinition> Pipelines { get; } = [];

    /// <summary>Custom aggregators the pipelines may name.</summary>
    public AggregatorRegistry Registry { get; set; } = AggregatorRegistry.Default;

    /// <summary>Embedded or PostgreSQL mode, the connection string and the stream settings.</summary>
    public PipelineClusterOptions Cluster { get; set; } = new();

    /// <summary>Embedded mode: the SQLite file that keeps grain state across restarts.</summary>
    public string DatabasePath { get; set; } = Path.Combine("data", "pipeline.db");

    /// <summary>
    /// Embedded mode: how often a key grain writes its state at most (see <see cref="KeyGrainOptions.StateWriteInterval"/>).
    /// PostgreSQL mode always writes after every batch, before the batch is acknowledged.
    /// </summary>
    public TimeSpan StateWriteInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>PostgreSQL mode: apply schema migrations at start-up (otherwise the schema must already be current).</summary>
    public bool MigrateOnStart { get; set; } = true;

    /// <summary>
    /// How long a key holds batches behind a gap in a producer's sequence (<see cref="KeyGrainOptions.SequenceGapTimeout"/>).
    /// Default: 30 s embedded; twice the stream visibility timeout plus 30 s in PostgreSQL mode.
    /// </summary>
    public TimeSpan? SequenceGapTimeout { get; set; }

    /// <summary>PostgreSQL mode: how often a key's close-windows reminder ticks (<see cref="KeyGrainOptions.ReminderPeriod"/>).</summary>
    public TimeSpan ReminderPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long a key grain stays in memory without a call before it is deactivated (its state stored first). Keys
    /// with windows that time must close stay active while they need it. Idle keys then cost only their stored row.
    /// </summary>
    public TimeSpan KeyIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// When the silo's memory use passes this percentage of what the process may use (a container's memory limit, or
    /// the GC's heap hard limit; else the machine's memory), Orleans deactivates the grains idle longest (key grains,
    /// their state stored) until use is back under 85% of it, checked every second; a shed key comes back with its next
    /// event. So a silo with more keys than fit its memory slows down instead of being killed for memory. Null: off.
    /// </summary>
    public double? ShedKeysAtMemoryPercent { get; set; } = 80;

    /// <summary>
    /// Key result batches each pipeline's recent-results log holds on a silo (<see cref="LiveResultsOptions.RecentResults"/>):
    /// how far a live subscriber may fall behind and still catch up from the log.
    /// </summary>
    public int RecentResults { get; set; } = new LiveResultsOptions().RecentResults;

    /// <summary>Embedded mode: events each in-memory event queue holds at most before publishers wait (<see cref="EmbeddedQueueOptions.Capacity"/>).</summary>
    public int EmbeddedQueueCapacity { get; set; } = 262_144;
}

/// <summary>The one place that turns pipeline options into Orleans providers.</summary>
public static class PipelineHostingExtensions
{
    /// <summary>
    /// The pipelines' grains and the providers of the chosen mode. Embedded: memory streams and grain state in a local
    /// SQLite file. PostgreSQL: grain state, reminders and durable event queues in PostgreSQL, fired windows in the
    /// results table, and the schema migrated (or verified) before anything reads it. Validates everything first and
    /// throws one <see cref="ArgumentException"/> listing all problems. Clustering is separate
    /// (<see cref="UsePipelineCluster"/>), so that a test harness can bring its own.
    /// </summary>
    public static ISiloBuilder AddPipelineSilo(this ISiloBuilder silo, Action<PipelineSiloOptions> configure)
    {
        var options = new PipelineSiloOptions();
        configure(options);
        PipelineSiloOptionsValidator.ThrowIfInvalid(options);
        var cluster = options.Cluster;
        var catalog = new PipelineCatalog(options.Pipelines, options.Registry);

        silo.Services.AddSingleton(catalog);
        // The pipeline's clock is the silo's unless replaced (tests): see PipelineTime.
        silo.Services.TryAddKeyedSingleton<TimeProvider>(PipelineTime.Key, (sp, _) => sp.GetRequiredService<TimeProvider>());
        silo.Services.AddSingleton(new LiveResultsOptions { RecentResults = options.RecentResults });
        silo.Services.AddSingleton<LiveResults>();
        silo.Services.AddSingleton<KeyGrainReferences>();
        silo.Services.AddSingleton<PipelineLatencies>();
        silo.Services.AddSingleton<PartitionLags>();
        silo.Services.AddSingleton<ChainWatermarks>();
        silo.Services.AddSingleton<KeyWakeups>();
        silo.Services.AddSingleton<ChainForwarder>();
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LiveResults>());
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<KeyWakeups>());
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ChainWatermarks>());
        silo.Configure<GrainCollectionOptions>(o =>
        {
            o.ClassSpecificCollectionAge[PipelineStorage.KeyGrainClass] = options.KeyIdleTimeout;
            if (options.ShedKeysAtMemoryPercent is not { } limit) return;
            o.EnableActivationSheddingOnMemoryPressure = true;
            o.MemoryUsageLimitPercentage = limit;
            o.MemoryUsageTargetPercentage = limit * 0.85;
            o.MemoryUsagePollingPeriod = TimeSpan.FromSeconds(1);
        });
        if (cluster.Mode == PipelineMode.PostgreSql) AddPostgres(silo, options);
        else AddEmbedded(silo, options);

        silo.AddMemoryStreams(PipelineNames.ResultsStreamProvider, streams => streams.ConfigurePartitioning(cluster.StreamQueues));
        return silo;
    }

    /// <summary>
    /// Joins the cluster the options name: localhost in embedded mode, the PostgreSQL membership table otherwise,
    /// listening on <paramref name="siloPort"/> and <paramref name="gatewayPort"/> and advertising
    /// <paramref name="advertisedAddress"/> (default: loopback).
    /// </summary>
    public static ISiloBuilder UsePipelineCluster(this ISiloBuilder silo, PipelineClusterOptions options, int siloPort = 11111, int gatewayPort = 30000, IPAddress? advertisedAddress = null)
    {
        if (options.Tls.Enabled)
        {
            var certificate = ClusterTls.LoadCertificate(options.Tls);
            silo.UseTls(certificate, tls => ClusterTls.Configure(tls, options.Tls, certificate));
        }

        if (options.Mode == PipelineMode.PostgreSql)
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ServiceId;
            });
            silo.UseAdoNetClustering(o =>
            {
                o.Invariant = PostgresConnections.Invariant;
                o.ConnectionString = PostgresConnections.Tune(options.ConnectionString!);
            });
            silo.ConfigureEndpoints(advertisedAddress ?? IPAddress.Loopback, siloPort, gatewayPort, listenOnAnyHostAddress: options.ListenOnAllInterfaces);
        }
        else
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort, null, options.ServiceId, options.ClusterId);
        }

        return silo;
    }

    private static void AddEmbedded(ISiloBuilder silo, PipelineSiloOptions options)
    {
        var connectionString = SqliteStateSchema.Ensure(options.DatabasePath);
        silo.Services.AddSingleton(new KeyGrainOptions
        {
            StateWriteInterval = options.StateWriteInterval,
            SequenceGapTimeout = options.SequenceGapTimeout ?? TimeSpan.FromSeconds(30),
        });
        silo.Services.AddSingleton<IResultSink, NoResultSink>();
        silo.Services.AddSingleton(_ => new SqliteKeyStateStore(connectionString));
        silo.Services.AddSingleton<IKeyStateStore>(sp => sp.GetRequiredService<SqliteKeyStateStore>());
        silo.Services.AddSingleton(new EmbeddedQueueOptions { Capacity = options.EmbeddedQueueCapacity });
        silo.AddMemoryGrainStorage("PubSubStore");
        var queues = options.Cluster.StreamQueues;
        silo.AddPersistentStreams(PipelineNames.StreamProvider, (sp, name) => EmbeddedQueueAdapterFactory.Create(sp, name, queues), streams =>
        {
            streams.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly);
            streams.ConfigurePullingAgent(agent => agent.Configure(o =>
            {
                o.GetQueueMsgsTimerPeriod = TimeSpan.FromMilliseconds(10);
                o.MaxEventDeliveryTime = TimeSpan.FromSeconds(30);
            }));
        });
    }

    private static void AddPostgres(ISiloBuilder silo, PipelineSiloOptions options)
    {
        var cluster = options.Cluster;
        var connectionString = PostgresConnections.Tune(cluster.ConnectionString!);
        silo.Services.AddSingleton(new KeyGrainOptions
        {
            // The event queue is durable and a batch is acknowledged after the grain returns: write before returning.
            StateWriteInterval = TimeSpan.Zero,
            SequenceGapTimeout = options.SequenceGapTimeout ?? 2 * cluster.Streams.VisibilityTimeout + TimeSpan.FromSeconds(30),
            UseReminders = true,
            ReminderPeriod = options.ReminderPeriod,
        });
        silo.Services.AddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        silo.Services.AddSingleton<PostgresResultSink>();
        silo.Services.AddSingleton<IResultSink>(sp => sp.GetRequiredService<PostgresResultSink>());
        silo.Services.AddSingleton<PostgresKeyStateStore>();
        silo.Services.AddSingleton<IKeyStateStore>(sp => sp.GetRequiredService<PostgresKeyStateStore>());
        silo.Services.AddSingleton(new PostgresStartup.Settings(connectionString, options.MigrateOnStart));
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, PostgresStartup>();

        AddGrainStorage(silo, "PubSubStore", PostgresConnections.Invariant, connectionString);
        silo.UseAdoNetReminderService(o =>
        {
            o.Invariant = PostgresConnections.Invariant;
            o.ConnectionString = connectionString;
        });
        silo.AddAdoNetStreams(PipelineNames.StreamProvider, streams =>
        {
            streams.ConfigureAdoNet(builder => builder.Configure(o => PostgresConnections.ConfigureDurableStreams(o, cluster)));
            streams.ConfigurePartitioning(cluster.StreamQueues);
            streams.ConfigureCache(cluster.Streams.CacheSize);
            streams.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly);
            streams.ConfigurePullingAgent(agent => agent.Configure(o =>
            {
                o.GetQueueMsgsTimerPeriod = cluster.Streams.PollInterval;
                // A grain that cannot write (database trouble) is retried this long; then the message is made visible
                // again and redelivered, up to MaxAttempts leases, so a longer outage is waited out, not dropped.
                o.MaxEventDeliveryTime = TimeSpan.FromSeconds(30);
            }));
        });
    }

    private static void AddGrainStorage(ISiloBuilder silo, string name, string invariant, string connectionString) =>
        silo.AddAdoNetGrainStorage(name, (OptionsBuilder<AdoNetGrainStorageOptions> builder) =>
            builder.Configure<Serializer>((o, serializer) =>
            {
                o.Invariant = invariant;
                o.ConnectionString = connectionString;
                o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            }));
}

/// <summary>
/// PostgreSQL mode, first thing at silo start: migrate (or verify) the schema before any provider reads its queries,
/// and record the pipelines the silo runs. A database that cannot be reached fails the start with the reason.
/// </summary>
internal sealed partial class PostgresStartup(PostgresStartup.Settings settings, PostgresResultSink sink, ILogger<PostgresStartup> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    public sealed record Settings(string ConnectionString, bool Migrate);

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(PostgresStartup), ServiceLifecycleStage.First, StartAsync);

    private async Task StartAsync(CancellationToken cancellationToken)
    {
        var server = new NpgsqlConnectionStringBuilder(settings.ConnectionString);
        var where = $"PostgreSQL at {server.Host}:{server.Port}, database '{server.Database}'";
        try
        {
            if (settings.Migrate)
            {
                var report = await PostgresSchema.MigrateAsync(settings.ConnectionString, cancellationToken: cancellationToken);
                LogSchema(where, report.FromVersion, report.ToVersion);
            }
            else
            {
                await PostgresSchema.VerifyAsync(settings.ConnectionString, cancellationToken);
            }

            await sink.RegisterPipelinesAsync(cancellationToken);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            throw new PipelineStartupException($"cannot use {where}: {e.Message}", e);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Where}: schema version {From} -> {To}")]
    private partial void LogSchema(string where, int from, int to);
}
