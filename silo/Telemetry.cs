using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Orleans.Pipeline.Silo;

/// <summary>
/// Exporting what the silo measures (<c>Pipeline:Telemetry</c>): the pipeline's meter with Orleans' and Npgsql's on the
/// Prometheus scrape endpoint of the health port (<c>Prometheus</c>, on by default), and metrics and traces
/// (<see cref="PipelineTracing"/>) over OTLP when <c>OtlpEndpoint</c> is set.
/// </summary>
internal static class Telemetry
{
    public const string Section = "Pipeline:Telemetry";

    /// <summary>The meters exported: the pipeline's, Orleans' and Npgsql's.</summary>
    public static readonly string[] Meters = [PipelineMeter.Name, "Microsoft.Orleans", "Npgsql"];

    /// <summary>Adds the exporters configured; returns whether the Prometheus endpoint is to be mapped.</summary>
    public static bool Add(IServiceCollection services, IConfiguration configuration)
    {
        var prometheus = configuration.GetValue($"{Section}:Prometheus", true);
        var otlp = configuration[$"{Section}:OtlpEndpoint"] is { Length: > 0 } endpoint
            ? Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) ? uri : throw new ArgumentException($"{Section}:OtlpEndpoint '{endpoint}' is not an absolute URL")
            : null;
        if (!prometheus && otlp is null) return false;

        var telemetry = services.AddOpenTelemetry().ConfigureResource(r => r.AddService("orleans-pipeline-silo", serviceInstanceId: Environment.MachineName));
        telemetry.WithMetrics(metrics =>
        {
            metrics.AddMeter(Meters);
            if (prometheus) metrics.AddPrometheusExporter();
            if (otlp is not null) metrics.AddOtlpExporter(o => o.Endpoint = otlp);
        });
        if (otlp is not null) telemetry.WithTracing(tracing => tracing.AddSource(PipelineTracing.Name).AddOtlpExporter(o => o.Endpoint = otlp));
        return prometheus;
    }
}
