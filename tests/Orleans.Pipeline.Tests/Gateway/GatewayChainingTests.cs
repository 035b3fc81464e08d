using Grpc.Core;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.Chaining;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>
/// A chained pipeline through the gateway: listed with its input, refused as a target of publishing with the pipeline
/// to publish to instead, and queried like any other, its top-N values labelled with their keys.
/// </summary>
public sealed class GatewayChainingTests
{
    [Fact]
    public async Task A_chained_pipeline_is_listed_with_its_input_refuses_events_and_answers_queries_with_labelled_top_values()
    {
        var plan = ChainPlan.TopItems("gw");
        await using var host = await GatewayHost.StartAsync(silo: o => o.Pipelines.AddRange([plan.Upstream, plan.Downstream]));
        using var client = host.NewClient();

        var listed = (await client.ListPipelinesAsync()).Single(p => p.Name == plan.Downstream.Name);
        Assert.Equal((plan.Upstream.Name, "all"), (listed.InputPipeline, listed.InputKeyBy));
        Assert.Equal(["top_count_1", "top_count_2", "top_count_3"], listed.Outputs);

        var refused = await Assert.ThrowsAsync<RpcException>(() =>
            client.PublishAsync(plan.Downstream.Name, [new GatewayEvent("a", 1_000, new Dictionary<string, double> { ["count"] = 1 })]));
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Contains($"publish to '{plan.Upstream.Name}'", refused.Status.Detail);

        // Subscribed like any pipeline: the chained results arrive on the live feed too.
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        // From position 0 of the recent-results log: nothing is missed however late the subscription registers.
        var subscribed = client.SubscribeAsync(plan.Downstream.Name, [ChainInput.AllKey], afterChangeId: 0, cancellationToken: cancel.Token).GetAsyncEnumerator(cancel.Token);

        // Item a viewed 3 times, b twice, c once in [0, 2000); then every partition's watermark far past it.
        GatewayEvent View(string item, long time) => new(item, time, new Dictionary<string, double> { ["n"] = 1 });
        await client.PublishAsync(plan.Upstream.Name, [View("a", 100), View("b", 200), View("a", 300), View("c", 400), View("b", 500), View("a", 1_500)], waitApplied: true);
        await client.PublishAsync(plan.Upstream.Name, plan.Flush(2_000).Select(e => new GatewayEvent(e.Key, e.TimeMs, e.Fields)), waitApplied: true);

        var window = await WaitForAsync(async () => (await client.QueryAsync(plan.Downstream.Name, ChainInput.AllKey)).Closed.FirstOrDefault(w => w.StartMs == 0 && w.EndMs == 2_000));
        Assert.Equal(3.0, window.Values["top_count_1"]);
        Assert.Equal(("a", "b", "c"), (window.Labels["top_count_1"], window.Labels["top_count_2"], window.Labels["top_count_3"]));
        Assert.Equal((2.0, 1.0), (window.Values["top_count_2"], window.Values["top_count_3"]));

        Orleans.Pipeline.Gateway.V1.WindowResult? live = null;
        while (live is null && await subscribed.MoveNextAsync()) live = subscribed.Current.Results.FirstOrDefault(r => r.StartMs == 0 && r.EndMs == 2_000);
        Assert.NotNull(live);
        Assert.Equal(("a", 3.0), (live.Labels["top_count_1"], live.Values["top_count_1"]));
        await cancel.CancelAsync();
        await subscribed.DisposeAsync();
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T?>> read) where T : class
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        for (var delay = 10; ; delay = Math.Min(delay * 2, 500))
        {
            if (await read() is { } found) return found;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the chained window did not close");
            await Task.Delay(delay);
        }
    }
}
