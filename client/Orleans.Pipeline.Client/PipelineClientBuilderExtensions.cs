using Microsoft.Extensions.Configuration;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>Orleans client configuration for talking to pipeline silos.</summary>
public static class PipelineClientBuilderExtensions
{
    /// <summary>
    /// Connects to an embedded-mode silo on localhost (its Orleans gateway port <paramref name="gatewayPort"/>) and adds
    /// the pipeline streams (<see cref="AddPipelineClient(IClientBuilder, PipelineClusterOptions?)"/>). A PostgreSQL-mode
    /// cluster is reached with <c>AddPostgresClusterClient</c> of the PostgreSQL package (or the hosting package's
    /// <c>UsePipelineCluster</c>, which picks by mode).
    /// </summary>
    public static IClientBuilder UseEmbeddedPipelineCluster(this IClientBuilder client, PipelineClusterOptions options, int gatewayPort = 30000)
    {
        if (options.Mode != PipelineMode.Embedded)
            throw new ArgumentException($"Pipeline:Mode is {options.Mode}: connect with AddPostgresClusterClient (Orleans.Pipeline.PostgreSql)", nameof(options));
        client.UsePipelineTls(options);
        client.UseLocalhostClustering(gatewayPort, options.ServiceId, options.ClusterId);
        return client.AddPipelineClient(options);
    }

    /// <summary>Mutual TLS on the connections to the silos, when <see cref="PipelineClusterOptions.Tls"/> is enabled.</summary>
    public static IClientBuilder UsePipelineTls(this IClientBuilder client, PipelineClusterOptions options)
    {
        if (options.Tls.Enabled)
        {
            var certificate = ClusterTls.LoadCertificate(options.Tls);
            client.UseTls(certificate, tls => ClusterTls.Configure(tls, options.Tls, certificate));
        }

        return client;
    }

    /// <summary>The live results streams (memory streams, in both modes).</summary>
    public static IClientBuilder AddPipelineResultStreams(this IClientBuilder client, PipelineClusterOptions? options = null)
    {
        options ??= new PipelineClusterOptions();
        return client.AddMemoryStreams(PipelineNames.ResultsStreamProvider, streams => streams.ConfigurePartitioning(options.StreamQueues));
    }

    /// <summary>
    /// The embedded pipeline stream providers: events on the silo's bounded in-memory queues, live results on memory
    /// streams. (A PostgreSQL-mode client adds its durable event streams with <c>AddPostgresClusterClient</c> and the
    /// results with <see cref="AddPipelineResultStreams"/>.)
    /// </summary>
    public static IClientBuilder AddPipelineClient(this IClientBuilder client, PipelineClusterOptions? options = null)
    {
        options ??= new PipelineClusterOptions();
        var queues = options.StreamQueues;
        client.AddPersistentStreams(PipelineNames.StreamProvider, (sp, name) => EmbeddedQueueAdapterFactory.Create(sp, name, queues),
            streams => streams.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly));
        return client.AddPipelineResultStreams(options);
    }
}
