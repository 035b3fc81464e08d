using Orleans.Hosting;

namespace Orleans.Pipeline.Client;

/// <summary>Orleans client configuration for talking to pipeline silos.</summary>
public static class PipelineClientBuilderExtensions
{
    /// <summary>Embedded mode: memory streams to publish events and subscribe to results.</summary>
    public static IClientBuilder AddPipelineClient(this IClientBuilder client, int streamQueues = 8)
    {
        client.AddMemoryStreams(PipelineNames.StreamProvider, streams => streams.ConfigurePartitioning(streamQueues));
        client.AddMemoryStreams(PipelineNames.ResultsStreamProvider, streams => streams.ConfigurePartitioning(streamQueues));
        return client;
    }
}
