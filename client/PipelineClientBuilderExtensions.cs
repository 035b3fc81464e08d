using Microsoft.Extensions.Configuration;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>Orleans client configuration for talking to pipeline silos.</summary>
public static class PipelineClientBuilderExtensions
{
    /// <summary>The ADO.NET invariant of PostgreSQL.</summary>
    public const string PostgresInvariant = "Npgsql";

    /// <summary>
    /// Reads <see cref="PipelineClusterOptions"/> from the <c>Pipeline</c> section (and the connection string from
    /// <c>ConnectionStrings:Pipeline</c> when the section has none). Throws <see cref="ArgumentException"/> listing
    /// every problem.
    /// </summary>
    public static PipelineClusterOptions ReadClusterOptions(IConfiguration configuration)
    {
        var options = new PipelineClusterOptions();
        try
        {
            configuration.GetSection(PipelineClusterOptions.Section).Bind(options);
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException($"invalid '{PipelineClusterOptions.Section}' settings: {e.Message}", e);
        }

        options.ConnectionString ??= configuration.GetConnectionString("Pipeline");
        var problems = options.Validate().ToList();
        if (problems.Count == 0 && options.Mode == PipelineMode.PostgreSql)
        {
            try
            {
                TuneConnectionString(options.ConnectionString!);
            }
            catch (ArgumentException e)
            {
                problems.Add(e.Message);
            }
        }

        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems));
        return options;
    }

    /// <summary>
    /// Connects to the cluster the options name: localhost in embedded mode (gateway <paramref name="gatewayPort"/>),
    /// the PostgreSQL membership table in PostgreSQL mode; and adds the pipeline streams (<see cref="AddPipelineClient(IClientBuilder, PipelineClusterOptions?)"/>).
    /// </summary>
    public static IClientBuilder UsePipelineCluster(this IClientBuilder client, PipelineClusterOptions options, int gatewayPort = 30000)
    {
        if (options.Tls.Enabled)
        {
            var certificate = ClusterTls.LoadCertificate(options.Tls);
            client.UseTls(certificate, tls => ClusterTls.Configure(tls, options.Tls, certificate));
        }

        if (options.Mode == PipelineMode.PostgreSql)
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ServiceId;
            });
            client.UseAdoNetClustering(o =>
            {
                o.Invariant = PostgresInvariant;
                o.ConnectionString = TuneConnectionString(options.ConnectionString!);
            });
        }
        else
        {
            client.UseLocalhostClustering(gatewayPort, options.ServiceId, options.ClusterId);
        }

        return client.AddPipelineClient(options);
    }

    /// <summary>
    /// The pipeline stream providers: events on the silo's bounded in-memory queues (embedded) or the PostgreSQL queues (PostgreSQL
    /// mode), where <c>PublishAsync</c> returns once the batch is stored; live results on memory streams in both.
    /// </summary>
    public static IClientBuilder AddPipelineClient(this IClientBuilder client, PipelineClusterOptions? options = null)
    {
        options ??= new PipelineClusterOptions();
        if (options.Mode == PipelineMode.PostgreSql)
        {
            client.AddAdoNetStreams(PipelineNames.StreamProvider, streams =>
            {
                streams.ConfigureAdoNet(builder => builder.Configure(o => ConfigureDurableStreams(o, options)));
                streams.ConfigurePartitioning(options.StreamQueues);
                streams.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly);
            });
        }
        else
        {
            var queues = options.StreamQueues;
            client.AddPersistentStreams(PipelineNames.StreamProvider, (sp, name) => EmbeddedQueueAdapterFactory.Create(sp, name, queues),
                streams => streams.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly));
        }

        client.AddMemoryStreams(PipelineNames.ResultsStreamProvider, streams => streams.ConfigurePartitioning(options.StreamQueues));
        return client;
    }

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
    public static string TuneConnectionString(string connectionString)
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

        if (!ConnectionStringHas(connectionString, "Maximum Pool Size", "MaxPoolSize")) builder.MaxPoolSize = Math.Clamp(8 * Environment.ProcessorCount, 16, 64);
        if (!ConnectionStringHas(connectionString, "No Reset On Close", "NoResetOnClose")) builder.NoResetOnClose = true;
        if (!ConnectionStringHas(connectionString, "Max Auto Prepare", "MaxAutoPrepare")) builder.MaxAutoPrepare = 64;
        if (!ConnectionStringHas(connectionString, "Auto Prepare Min Usages", "AutoPrepareMinUsages")) builder.AutoPrepareMinUsages = 2;
        return builder.ConnectionString;
    }

    private static bool ConnectionStringHas(string connectionString, params string[] keys) =>
        connectionString.Split(';').Select(part => part.Split('=', 2)[0].Trim())
            .Any(key => keys.Any(k => string.Equals(k, key, StringComparison.OrdinalIgnoreCase)));

    /// <summary>The durable stream settings, the same on silos and clients.</summary>
    public static void ConfigureDurableStreams(AdoNetStreamOptions target, PipelineClusterOptions options)
    {
        target.Invariant = PostgresInvariant;
        target.ConnectionString = TuneConnectionString(options.ConnectionString!);
        target.VisibilityTimeout = options.Streams.VisibilityTimeout;
        target.ExpiryTimeout = options.Streams.ExpiryTimeout;
        target.MaxAttempts = options.Streams.MaxAttempts;
        target.DeadLetterEvictionTimeout = options.Streams.DeadLetterRetention;
    }
}
