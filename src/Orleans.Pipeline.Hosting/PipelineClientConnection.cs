using Microsoft.Extensions.Configuration;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.PostgreSql;

namespace Orleans.Pipeline.Hosting;

/// <summary>Connecting an Orleans client to a pipeline cluster of either mode, and reading the cluster settings.</summary>
public static class PipelineClientConnection
{
    /// <summary>
    /// Connects to the cluster the options name: localhost in embedded mode (Orleans gateway <paramref name="gatewayPort"/>),
    /// the PostgreSQL membership table and durable event queues in PostgreSQL mode; with TLS when configured, and the
    /// live results streams.
    /// </summary>
    public static IClientBuilder UsePipelineCluster(this IClientBuilder client, PipelineClusterOptions options, int gatewayPort = 30000)
    {
        if (options.Mode == PipelineMode.Embedded) return client.UseEmbeddedPipelineCluster(options, gatewayPort);
        return client.UsePipelineTls(options).AddPostgresClusterClient(options).AddPipelineResultStreams(options);
    }

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
        var result = new PipelineClusterOptionsValidator().Validate(null, options);
        if (result.Failed) throw new ArgumentException(string.Join("; ", result.Failures));
        return options;
    }
}
