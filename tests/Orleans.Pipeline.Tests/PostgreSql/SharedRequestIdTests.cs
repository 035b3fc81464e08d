using Grpc.Core;
using Orleans.Pipeline.Tests.Gateway;
using static Orleans.Pipeline.Tests.Workload;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// In cluster mode a request id is shared by every gateway: a retry that reaches another gateway publishes nothing
/// twice, and the same id with other events is refused there too.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SharedRequestIdTests(PostgresServer postgres)
{
    [Fact]
    public async Task A_retry_through_another_gateway_publishes_nothing_twice_and_other_content_under_the_id_is_refused()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await using var cluster = await PostgresPipelineCluster.StartAsync(database, silos: 1);
        var options = new PipelineClusterOptions { Mode = PipelineMode.PostgreSql, ConnectionString = database };
        await using var first = await GatewayHost.StartAsync(cluster.Cluster.Client, options, owned: null);
        await using var second = await GatewayHost.StartAsync(cluster.Cluster.Client, options, owned: null);
        var request = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "order-77", Events = { new V1.Event { Key = "shared", TimeMs = 5, Fields = { ["a"] = 1, ["b"] = 1 } } } };

        Assert.Equal(1, (await new V1.PipelineGateway.PipelineGatewayClient(first.Channel).PublishAsync(request)).Accepted);
        // The answer was lost; the client retries through the other gateway.
        var other = new V1.PipelineGateway.PipelineGatewayClient(second.Channel);
        Assert.Equal(1, (await other.PublishAsync(request)).Accepted);
        var changed = request.Clone();
        changed.Events[0].TimeMs = 6;
        var error = await Assert.ThrowsAsync<RpcException>(async () => await other.PublishAsync(changed));
        Assert.Equal(StatusCode.AlreadyExists, error.StatusCode);

        using var client = second.NewClient();
        await client.PublishAsync("tumbling", [new PipelineEvent("shared", 7, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })]);
        await WaitUntilAsync(async () => (await client.QueryAsync("tumbling", "shared")).AppliedEvents >= 2, "the later event applied");
        Assert.Equal(2, (await client.QueryAsync("tumbling", "shared")).AppliedEvents);
    }
}
