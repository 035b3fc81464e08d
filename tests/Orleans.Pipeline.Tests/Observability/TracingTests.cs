using System.Collections.Concurrent;
using System.Diagnostics;

namespace Orleans.Pipeline.Tests.Observability;

/// <summary>
/// One published event can be followed through the system: the publisher's span is linked from the item's send, the
/// partition's apply is the send's child (the item carries its traceparent through the stream), the key's apply is
/// the partition's child, and the key's state write the key's.
/// </summary>
public sealed class TracingTests
{
    private static readonly ActivitySource Caller = new("Orleans.Pipeline.Tests.Caller");

    [Fact]
    public async Task A_publish_is_followed_from_the_callers_span_to_the_items_send_the_partitions_apply_the_keys_apply_and_its_state_write()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is PipelineTracing.Name or "Orleans.Pipeline.Tests.Caller",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        // Write-through, as in cluster mode: every apply stores the key's state (embedded mode's write-behind hands it
        // over an interval later, outside the apply's span).
        await using var cluster = await PipelineCluster.StartAsync(configure: o => o.StateWriteInterval = TimeSpan.Zero);
        await using var client = cluster.NewClient();
        ActivityContext published;
        using (var caller = Caller.StartActivity("checkout"))
        {
            published = caller!.Context;
            await client.PublishAsync("tumbling", new PipelineEvent("traced-key", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 }));
        }

        await client.WaitUntilAppliedAsync();
        await Workload.WaitUntilAsync(() => Task.FromResult(spans.Any(s => s.OperationName == "pipeline.state.write" && s.TraceId == Send()?.TraceId)), "the state write's span");

        var send = Send()!;
        Assert.Contains(send.Links, l => l.Context.SpanId == published.SpanId && l.Context.TraceId == published.TraceId);
        Assert.Equal(ActivityKind.Producer, send.Kind);
        var partition = Assert.Single(spans, s => s.OperationName == "pipeline.partition.apply" && s.ParentSpanId == send.SpanId);
        Assert.Equal(send.TraceId, partition.TraceId);
        Assert.Equal("tumbling", partition.GetTagItem("pipeline"));
        var key = Assert.Single(spans, s => s.OperationName == "pipeline.key.apply" && s.ParentSpanId == partition.SpanId);
        Assert.Equal(1, key.GetTagItem("pipeline.events"));
        Assert.Contains(spans, s => s.OperationName == "pipeline.state.write" && s.ParentSpanId == key.SpanId);

        Activity? Send() => spans.FirstOrDefault(s => s.OperationName == "pipeline.send" && s.Links.Any(l => l.Context.SpanId == published.SpanId));
    }
}
