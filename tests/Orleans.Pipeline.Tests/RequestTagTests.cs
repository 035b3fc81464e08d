using static Orleans.Pipeline.Tests.Workload;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// A tagged request (a gateway's request with a request id) is applied once by every partition, whichever client's
/// item brings its events: when the gateway that first published it dies having stored only some partitions' share,
/// the gateway that takes it over publishes all of it again under the same tag, and nothing is lost or doubled.
/// </summary>
public sealed class RequestTagTests
{
    private static readonly PipelineDefinition Tumbling = PipelineCluster.Pipelines[0];

    private static List<PipelineEvent> Request(int keys, int perKey) =>
        [.. Enumerable.Range(0, perKey).SelectMany(i => Enumerable.Range(0, keys).Select(k =>
            new PipelineEvent($"tagged-{k}", 1_000 + i * 10L, new Dictionary<string, double> { ["a"] = k + i, ["b"] = 1 })))];

    [Fact]
    public async Task A_request_published_again_under_its_tag_by_another_client_is_applied_once_whatever_share_the_first_stored()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        await using var first = cluster.NewClient();
        await using var second = cluster.NewClient();
        var request = Request(keys: 60, perKey: 5);
        var partitions = request.Select(e => PipelineNames.PartitionOf(e.Key, Tumbling.Partitions)).Distinct().Order().ToList();
        Assert.True(partitions.Count >= 2, "the request spans several partitions");

        // The first client (a gateway) stores the share of half the partitions, then dies.
        var tag = first.OpenRequest();
        var stored = partitions.Where((_, i) => i % 2 == 0).ToHashSet();
        var share = request.Where(e => stored.Contains(PipelineNames.PartitionOf(e.Key, Tumbling.Partitions))).ToList();
        await first.PublishAndWaitAsync(await first.ValidateAsync("tumbling", share), tag);
        await first.WaitUntilAppliedAsync();

        // Another client takes the request over and publishes all of it under the first one's tag.
        await second.PublishAndWaitAsync(await second.ValidateAsync("tumbling", request), tag);
        await second.WaitUntilAppliedAsync();

        foreach (var key in request.Select(e => e.Key).Distinct())
        {
            var windows = await second.QueryAsync("tumbling", key);
            Assert.Equal((5L, 0L), (windows.AppliedEvents, windows.LateEvents));
        }

        // Other events of the same keys in later items are applied as usual.
        await second.PublishAndWaitAsync(await second.ValidateAsync("tumbling", [.. request.Take(60).Select(e => e with { TimeMs = e.TimeMs + 100 })]));
        await second.WaitUntilAppliedAsync();
        Assert.All(await Task.WhenAll(request.Select(e => e.Key).Distinct().Select(k => second.QueryAsync("tumbling", k))), w => Assert.Equal(6, w.AppliedEvents));
    }

    [Fact]
    public async Task A_closed_request_is_forgotten_by_the_partitions_so_their_memory_stays_bounded()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        await using var client = cluster.NewClient();
        var request = Request(keys: 40, perKey: 1);
        for (var round = 0; round < 20; round++)
        {
            var tag = client.OpenRequest();
            await client.PublishAndWaitAsync(await client.ValidateAsync("tumbling", [.. request.Select(e => e with { TimeMs = e.TimeMs + round })]), tag);
            client.CloseRequest(tag);
        }

        // One more item to every partition carries the producer's progress: every tag before it is closed.
        var last = client.OpenRequest();
        await client.PublishAndWaitAsync(await client.ValidateAsync("tumbling", [.. request.Select(e => e with { TimeMs = e.TimeMs + 100 })]), last);
        await client.WaitUntilAppliedAsync();

        foreach (var partition in request.Select(e => PipelineNames.PartitionOf(e.Key, Tumbling.Partitions)).Distinct())
        {
            var status = await cluster.Client.GetGrain<IPartitionGrain>(PipelineNames.PartitionKey("tumbling", partition)).GetStatusAsync();
            Assert.Equal(1, status.RememberedRequests); // the open one; the 20 closed before it are forgotten
            Assert.Equal(0, status.DuplicateRequestEvents);
        }
    }
}
