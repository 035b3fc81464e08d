using Grpc.Core;
using Orleans.Pipeline.Tests.Gateway;
using Orleans.Runtime;
using static Orleans.Pipeline.Tests.Workload;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// One event from a wrong clock (year 9999) must not poison its key: event times further ahead than the pipeline's
/// MaxTimeAhead are refused by the client and the gateway with a clear error, and dead-lettered by the key (against
/// when the item was sent) if an item bypasses both; the key's later events are not late.
/// </summary>
public sealed class EventTimeHorizonTests
{
    private static readonly Dictionary<string, double> Fields = new() { ["a"] = 1, ["b"] = 1 };

    [Fact]
    public async Task The_client_refuses_an_event_too_far_ahead_of_its_clock_and_keeps_what_it_accepted_before()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        await using var client = cluster.NewClient();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await client.PublishAsync("tumbling", new PipelineEvent("clock", now, Fields));

        var error = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            client.PublishAsync("tumbling", new PipelineEvent("clock", 253_402_300_000_000, Fields)));
        Assert.Contains("ahead of the clock", error.Message, StringComparison.Ordinal);
        Assert.Contains("at most 86400000 ms ahead is accepted", error.Message, StringComparison.Ordinal);

        await client.PublishAsync("tumbling", new PipelineEvent("clock", now + 1, Fields));
        await client.WaitUntilAppliedAsync();
        var windows = await client.QueryAsync("tumbling", "clock");
        Assert.Equal((2L, 0L), (windows.AppliedEvents, windows.LateEvents));
    }

    [Fact]
    public async Task The_gateway_refuses_a_request_with_an_event_too_far_ahead_with_invalid_argument_naming_it()
    {
        await using var host = await GatewayHost.StartAsync();
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        var request = new V1.PublishRequest { Pipeline = "tumbling" };
        request.Events.Add(new V1.Event { Key = "clock", TimeMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), Fields = { Fields } });
        request.Events.Add(new V1.Event { Key = "clock", TimeMs = DateTimeOffset.UtcNow.AddDays(3).ToUnixTimeMilliseconds(), Fields = { Fields } });
        var error = await Assert.ThrowsAsync<RpcException>(async () => await grpc.PublishAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("event 1: pipeline 'tumbling', key 'clock': event time", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("ahead of the clock", error.Status.Detail, StringComparison.Ordinal);
        using var client = host.NewClient();
        Assert.Equal(0, (await client.QueryAsync("tumbling", "clock")).AppliedEvents);
    }

    [Fact]
    public async Task A_key_dead_letters_an_event_too_far_ahead_of_when_its_item_was_sent_and_its_later_events_are_not_late()
    {
        await using var cluster = await PipelineCluster.StartAsync();
        var definition = PipelineCluster.Pipelines[0];
        var fields = definition.Windowing.Fields.ToArray();
        var partition = PipelineNames.PartitionOf("poisoned", definition.Partitions);
        var stream = cluster.Client.GetStreamProvider(PipelineNames.StreamProvider)
            .GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, PipelineNames.PartitionKey("tumbling", partition)));
        var grain = cluster.Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey("tumbling", "poisoned"));
        var producer = Guid.NewGuid();
        const long sent = 1_800_000_000_000;

        // A producer that skipped validation: a year-9999 event between two ordinary ones.
        await stream.OnNextAsync(PartitionBatch.ForKey("poisoned", definition.Partitions, producer, 1, fields, [sent - 50, 253_402_300_000_000, sent - 40], [1, 1, 1, 1, 1, 1], sent));
        await stream.OnNextAsync(PartitionBatch.ForKey("poisoned", definition.Partitions, producer, 2, fields, [sent - 30, sent - 20], [1, 1, 1, 1], sent + 10));
        await WaitUntilAsync(async () => (await grain.GetWindowsAsync()).AppliedEvents == 4, "the four ordinary events applied");

        var windows = await grain.GetWindowsAsync();
        Assert.Equal(0, windows.LateEvents);
        Assert.True(windows.Watermark < sent, $"the watermark {windows.Watermark} moved with the refused event");
    }
}
