using Grpc.Core;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.PostgreSql;
using static Orleans.Pipeline.Tests.Workload;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>The gateway as its own process (the <c>gateway</c> command), an Orleans client of a separate silo process.</summary>
public sealed class GatewayProcessTests
{
    [Fact]
    public async Task A_standalone_gateway_process_publishes_to_and_queries_a_separate_silo()
    {
        var siloGatewayPort = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var gatewayUrl = $"http://127.0.0.1:{FreePorts.Next()}";
        var silo = SiloProcess.PipelineEnvironment(PipelineCluster.Pipelines);
        silo["Pipeline__Gateway__Enabled"] = "false";
        silo["Pipeline__SiloPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture);
        silo["Pipeline__GatewayPort"] = siloGatewayPort;
        silo["Pipeline__DatabasePath"] = Path.Combine(Directory.CreateTempSubdirectory("orleans-pipeline-gw-").FullName, "pipeline.db");
        await using var siloProcess = SiloProcess.Start(silo);
        await siloProcess.WaitForOutputAsync("silo started", TimeSpan.FromSeconds(60));
        Assert.DoesNotContain("gateway listening", siloProcess.Output, StringComparison.Ordinal);

        await using var gatewayProcess = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Pipeline__GatewayPort"] = siloGatewayPort,
            ["Pipeline__Gateway__Url"] = gatewayUrl,
            ["Pipeline__Gateway__ApiKeys__ops__Hash"] = Orleans.Pipeline.Gateway.ApiKeyHash.Of("ops-key"),
            ["Pipeline__Gateway__ApiKeys__ops__Publish__0"] = "*",
            ["Pipeline__Gateway__ApiKeys__ops__Read__0"] = "*",
        }, "gateway");
        await gatewayProcess.WaitForOutputAsync("gateway connected to the cluster", TimeSpan.FromSeconds(60));

        using var client = new PipelineGatewayClient(new Uri(gatewayUrl), new PipelineGatewayClientOptions { ApiKey = "ops-key" });
        await client.PublishAsync("tumbling", Enumerable.Range(0, 25).Select(t => new GatewayEvent("remote", t, new Dictionary<string, double> { ["a"] = 2, ["b"] = 1 })), waitApplied: true);

        // Answered once applied in the silo process: the query right after sees all 25.
        var windows = await client.QueryAsync("tumbling", "remote");
        Assert.Equal(25, windows.AppliedEvents);
        Assert.Equal(20.0, windows.Closed.Single(w => w.StartMs == 0).Values["sum_a"]);
        Assert.DoesNotContain("ops-key", gatewayProcess.Output, StringComparison.Ordinal);
        using var anonymous = new PipelineGatewayClient(new Uri(gatewayUrl));
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => anonymous.QueryAsync("tumbling", "remote"))).StatusCode);
    }
}
