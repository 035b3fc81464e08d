using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Streams;
using Orleans.Pipeline.Storage;

namespace Orleans.Pipeline.PostgreSql;

/// <summary>How every PostgreSQL-mode component connects: the ADO.NET invariant, connection tuning and the durable stream settings.</summary>
public static class PostgresConnections
{
    /// <summary>The ADO.NET invariant of PostgreSQL (Npgsql).</summary>
    public const string Invariant = "Npgsql";

    /// <summary>
    /// The connection string every PostgreSQL-mode component uses: the configured one, plus what the pipeline's
    /// many small statements need unless set explicitly: pooled connections keep their state (no reset on close),
    /// statements used more than once are prepared, and the pool is small (a few connections per core): hundreds of
    /// server processes contending for a few cores cost far more than queueing for a connection. Measured with the
    /// demo on 2 cores, before partition-batched delivery: result latency 1.2 s with a pool of 8, 2.3 s with 16, over 9 s
    /// with the default 100. Since then keys' writes share group commits (a few connections), but the stream queues'
    /// polling, reminders and group commits together exhausted a pool of 8 at 100,000 keys: 8 per core, 16 to 64.
    /// Throws <see cref="ArgumentException"/> naming the problem when the string is not a valid Npgsql connection string.
    /// </summary>
    public static string Tune(string connectionString)
    {
        Npgsql.NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Pipeline:ConnectionString is not a valid PostgreSQL connection string: {e.Message}", e);
        }

        if (!Has(connectionString, "Maximum Pool Size", "MaxPoolSize")) builder.MaxPoolSize = Math.Clamp(8 * Environment.ProcessorCount, 16, 64);
        if (!Has(connectionString, "No Reset On Close", "NoResetOnClose")) builder.NoResetOnClose = true;
        if (!Has(connectionString, "Max Auto Prepare", "MaxAutoPrepare")) builder.MaxAutoPrepare = 64;
        if (!Has(connectionString, "Auto Prepare Min Usages", "AutoPrepareMinUsages")) builder.AutoPrepareMinUsages = 2;
        return builder.ConnectionString;
    }

    private static bool Has(string connectionString, params string[] keys) =>
        connectionString.Split(';').Select(part => part.Split('=', 2)[0].Trim())
            .Any(key => keys.Any(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase)));

    /// <summary>The durable stream settings, the same on silos and clients.</summary>
    public static void ConfigureDurableStreams(AdoNetStreamOptions target, PipelineClusterOptions options)
    {
        target.Invariant = Invariant;
        target.ConnectionString = Tune(options.ConnectionString!);
        target.VisibilityTimeout = options.Streams.VisibilityTimeout;
        target.ExpiryTimeout = options.Streams.ExpiryTimeout;
        target.MaxAttempts = options.Streams.MaxAttempts;
        target.DeadLetterEvictionTimeout = options.Streams.DeadLetterRetention;
    }

    /// <summary>
    /// An Orleans client of a PostgreSQL-mode cluster: finds the silos in the membership table and publishes to the
    /// durable event queues (a publish returns once the item is stored). The results streams and TLS are the client
    /// package's (<c>AddPipelineResultStreams</c>, <c>UsePipelineTls</c>).
    /// </summary>
    public static IClientBuilder AddPostgresClusterClient(this IClientBuilder client, PipelineClusterOptions options)
    {
        client.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = options.ClusterId;
            o.ServiceId = options.ServiceId;
        });
        client.UseAdoNetClustering(o =>
        {
            o.Invariant = Invariant;
            o.ConnectionString = Tune(options.ConnectionString!);
        });
        return client.AddPostgresEventStreams(options);
    }

    /// <summary>The durable event queues, for a client whose clustering is configured otherwise (a test host).</summary>
    public static IClientBuilder AddPostgresEventStreams(this IClientBuilder client, PipelineClusterOptions options) =>
        client.AddAdoNetStreams(PipelineNames.StreamProvider, streams =>
        {
            streams.ConfigureAdoNet(builder => builder.Configure(o => ConfigureDurableStreams(o, options)));
            streams.ConfigurePartitioning(options.StreamQueues);
            streams.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly);
        });
}

/// <summary>Registering what the gateways of a PostgreSQL-mode cluster share.</summary>
public static class PostgresGatewayStores
{
    /// <summary>
    /// The request ledger (<c>pipeline_request_ids</c>; ids done longer than <paramref name="requestIdRetention"/> ago
    /// are deleted) and the results change reader, for the gateway.
    /// </summary>
    public static IServiceCollection AddPostgresGatewayStores(this IServiceCollection services, string connectionString, TimeSpan requestIdRetention)
    {
        var dataSource = Npgsql.NpgsqlDataSource.Create(PostgresConnections.Tune(connectionString));
        services.AddSingleton<Storage.IResultChangeReader>(_ => new PostgresResultReader(dataSource));
        services.AddSingleton<Storage.IRequestLedger>(_ => new PostgresRequestLedger(dataSource, $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid():N}", requestIdRetention));
        return services;
    }
}
