using System.Diagnostics.Metrics;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.Scenarios;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// A silo past its memory limit deactivates the keys idle longest (<see cref="Hosting.PipelineSiloOptions.ShedKeysAtMemoryPercent"/>).
/// Here the limit is far below what any process uses, so keys are shed every second while events keep coming: a shed
/// key stores its state first and comes back with its next events, so nothing is lost and nothing applied twice.
/// </summary>
public sealed class KeySheddingTests
{
    private const int Keys = 3_000;
    private const int Events = 90_000;

    [Fact]
    public async Task Keys_shed_for_memory_while_events_flow_come_back_with_their_next_events_and_lose_nothing()
    {
        long shed = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == PipelineMeter.Name && instrument.Name == "pipeline.keys.shed") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "pipeline" && Equals(tag.Value, ScenarioPipelines.Flood.Name)) Interlocked.Add(ref shed, value);
        });
        listener.Start();

        await using var cluster = await PipelineCluster.StartAsync(configure: o =>
        {
            o.Pipelines.Add(ScenarioPipelines.Flood);
            o.ShedKeysAtMemoryPercent = 0.01;
        });
        await using var client = cluster.NewClient(new PipelineClientOptions { MaxBatchSize = 500, Linger = TimeSpan.FromMilliseconds(5) });

        // Published in two halves with a pause between them, so that keys are shed while they hold applied events.
        var perKey = await ScenarioPipelines.PublishFloodAsync(client, Keys, Events / 2, seed: 5);
        await client.WaitUntilAppliedAsync();
        await Workload.WaitUntilAsync(() => Task.FromResult(Interlocked.Read(ref shed) >= Keys / 2), "keys shed while they hold events");
        var second = await ScenarioPipelines.PublishFloodAsync(client, Keys, Events / 2, seed: 6);
        await client.WaitUntilAppliedAsync();
        for (var key = 0; key < Keys; key++) perKey[key] += second[key];

        for (var key = 0; key < Keys; key++)
        {
            if (perKey[key] == 0) continue;
            var windows = await client.QueryAsync(ScenarioPipelines.Flood.Name, $"k{key}");
            Assert.Equal(perKey[key], windows.AppliedEvents);
            var window = Assert.Single(windows.Open);
            Assert.Equal((perKey[key], (double)perKey[key]), (window.EventCount, window.Values[1]));
        }

        Assert.True(Interlocked.Read(ref shed) >= Keys / 2, $"only {shed} keys were shed");
    }
}
