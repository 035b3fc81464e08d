using Grpc.Core;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Gateway;
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
        await client.PublishAsync("tumbling", [new GatewayEvent("shared", 7, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })], waitApplied: true);
        Assert.Equal(2, (await client.QueryAsync("tumbling", "shared")).AppliedEvents);
    }

    [Fact]
    public async Task A_request_a_dead_gateway_stored_in_part_is_published_once_when_its_retry_takes_it_over_elsewhere()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await using var cluster = await PostgresPipelineCluster.StartAsync(database, silos: 1);
        var options = new PipelineClusterOptions { Mode = PipelineMode.PostgreSql, ConnectionString = database };
        var quick = new GatewayOptions { PublishTimeout = TimeSpan.FromSeconds(1) };
        await using var dead = await GatewayHost.StartAsync(cluster.Cluster.Client, options, owned: null, quick);
        await using var alive = await GatewayHost.StartAsync(cluster.Cluster.Client, options, owned: null, quick);
        var gateway = new V1.PipelineGateway.PipelineGatewayClient(alive.Channel);

        // Who the gateway takes the caller for (its row in the ledger names it).
        var probe = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "probe", Events = { new V1.Event { Key = "probe", TimeMs = 1, Fields = { ["a"] = 1, ["b"] = 1 } } } };
        await gateway.PublishAsync(probe);
        var caller = await ScalarTextAsync(database, "SELECT caller FROM pipeline_request_ids WHERE request_id = 'probe'");

        var request = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "order-88" };
        for (var i = 0; i < 5; i++)
        {
            for (var k = 0; k < 40; k++)
                request.Events.Add(new V1.Event { Key = $"part-{k}", TimeMs = 1_000 + i * 10, Fields = { ["a"] = k + i, ["b"] = 1 } });
        }

        // The first gateway claimed the id under its tag, stored half the partitions' share, and died.
        var partitions = PipelineCluster.Pipelines[0].Partitions;
        var tag = dead.Pipeline.OpenRequest();
        await PostgresQueries.ScalarAsync(database, """
            INSERT INTO pipeline_request_ids (caller, request_id, content_hash, events, claimed_by, claimed_at, origin_producer, origin_tag)
            VALUES (@caller, 'order-88', @hash, @events, 'dead-gateway', now() - interval '1 hour', @producer, @tag)
            """, ("caller", caller), ("hash", RequestContent.Hash(request)), ("events", request.Events.Count), ("producer", tag.Producer), ("tag", tag.Tag));
        var share = request.Events.Where(e => PipelineNames.PartitionOf(e.Key, partitions) % 2 == 0).Select(GatewayMapping.FromWire).ToList();
        Assert.NotEmpty(share);
        Assert.True(share.Count < request.Events.Count);
        await dead.Pipeline.PublishAndWaitAsync(await dead.Pipeline.ValidateAsync("tumbling", share), tag);

        // The client's retry reaches the other gateway, which takes the request over.
        Assert.Equal(request.Events.Count, (await gateway.PublishAsync(request)).Accepted);
        Assert.True(await PostgresQueries.ScalarAsync(database, "SELECT count(*) FROM pipeline_request_ids WHERE request_id = 'order-88' AND done_at IS NOT NULL AND taken_over") == 1);

        await using var client = cluster.NewClient();
        foreach (var key in request.Events.Select(e => e.Key).Distinct())
        {
            await WaitUntilAsync(async () => (await client.QueryAsync("tumbling", key)).AppliedEvents >= 5, $"'{key}' applied");
            Assert.Equal(5, (await client.QueryAsync("tumbling", key)).AppliedEvents);
            var results = await PostgresQueries.ReadResultsAsync(database, PipelineCluster.Pipelines[0], key);
            Assert.All(results.Values, r => Assert.Equal(1, r.EventCount));
        }
    }

    private static async Task<string> ScalarTextAsync(string database, string sql)
    {
        await using var connection = new Npgsql.NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }
}
