using Grpc.Net.Client;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.PostgreSql;
using static Orleans.Pipeline.Tests.Workload;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Observability;

/// <summary>A running silo serves its metrics (the pipeline's, Orleans') for Prometheus on the health port, at <c>/metrics</c>.</summary>
public sealed class PrometheusEndpointTests
{
    [Fact]
    public async Task A_running_silo_serves_the_pipeline_and_orleans_metrics_for_prometheus_on_its_health_port()
    {
        var gatewayUrl = $"http://127.0.0.1:{FreePorts.Next()}";
        await using var silo = await EmbeddedSiloProcess.StartAsync(gatewayUrl);

        using var channel = GrpcChannel.ForAddress(gatewayUrl);
        var gateway = new PipelineGatewayClient(channel);
        var now = DateTimeOffset.UtcNow;
        await gateway.PublishAsync("demo", Enumerable.Range(0, 50).Select(i =>
            GatewayEvent.Create($"account-{i % 5}", now.AddMilliseconds(i), ("amount", i), ("user", i % 3), ("latency", 10))));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var text = "";
        await WaitUntilAsync(async () =>
        {
            text = await http.GetStringAsync(silo.HealthUrl + "/metrics");
            return text.Contains("pipeline_events_applied", StringComparison.Ordinal);
        }, "the applied events on /metrics");

        foreach (var name in new[] { "pipeline_events_applied", "pipeline_items_applied", "pipeline_keys_active", "pipeline_apply_latency", "pipeline_gateway_requests", "pipeline_state_write_duration" })
            Assert.Contains(name, text, StringComparison.Ordinal);
        Assert.Contains("pipeline=\"demo\"", text, StringComparison.Ordinal);
        Assert.Contains("orleans_", text, StringComparison.Ordinal);
    }
}
