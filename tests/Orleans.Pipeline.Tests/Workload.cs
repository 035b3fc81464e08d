using Orleans.Pipeline.Client;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Pipeline.Windowing.Sketches;
using Orleans.Pipeline.Windowing.Tests.Reference;

namespace Orleans.Pipeline.Tests;

/// <summary>Generated traces as published events, what the reference says they produce, and waiting for it.</summary>
internal static class Workload
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    /// <summary>The events of a generated trace, with missing values given (the SDK refuses missing fields).</summary>
    public static List<EventStep> Events(int seed, WindowKind kind) =>
        TraceGenerator.Generate(seed, kind).Steps.OfType<EventStep>()
            .Select(e => e with { Values = e.Values.Select(v => double.IsNaN(v) ? 0 : v).ToArray() })
            .ToList();

    public static PipelineEvent ToEvent(string key, EventStep e) =>
        new(key, e.EventTime, new Dictionary<string, double> { ["a"] = e.Values[0], ["b"] = e.Values[1] });

    /// <summary>The same event for the gateway client.</summary>
    public static GatewayEvent ToGatewayEvent(string key, EventStep e) =>
        new(key, e.EventTime, new Dictionary<string, double> { ["a"] = e.Values[0], ["b"] = e.Values[1] });

    /// <summary>The reference's results folded into what a consumer holds: the latest revision per window, retractions removed.</summary>
    public static (Dictionary<(long, long), ReferenceResult> View, long Late) Expected(PipelineDefinition definition, IEnumerable<EventStep> events)
    {
        var reference = new ReferenceWindowing(definition.Windowing);
        var view = new Dictionary<(long, long), ReferenceResult>();
        foreach (var e in events)
        {
            foreach (var r in reference.Step(e).Results)
            {
                if (r.Kind == ResultKind.Retraction) view.Remove((r.Start, r.End));
                else view[(r.Start, r.End)] = r;
            }
        }

        return (view, reference.LateEvents);
    }

    public static Task WaitAppliedAsync(Client.PipelineClient client, string pipeline, string key, int events) =>
        WaitUntilAsync(async () =>
        {
            var windows = await client.QueryAsync(pipeline, key);
            return windows.AppliedEvents + windows.LateEvents == events;
        }, $"{events} events of '{key}' applied");

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        // Checks at once, then backs off from 5 ms to 100 ms: a condition met quickly costs no fixed sleep.
        var deadline = DateTime.UtcNow + Deadline;
        var pause = 5;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not reached within {Deadline}: {what}");
            await Task.Delay(pause);
            pause = Math.Min(pause * 2, 100);
        }
    }

    /// <summary>Null when <paramref name="actual"/> holds exactly the reference's windows; else the first difference.</summary>
    public static string? Difference(Dictionary<(long, long), WindowResult> actual, Dictionary<(long, long), ReferenceResult> expected)
    {
        if (actual.Count != expected.Count)
            return $"{actual.Count} windows, reference {expected.Count}: [{string.Join(", ", actual.Keys.Order())}] vs [{string.Join(", ", expected.Keys.Order())}]";
        foreach (var (window, e) in expected)
        {
            if (!actual.TryGetValue(window, out var a)) return $"window {window} missing";
            if (a.Revision != e.Revision || a.EventCount != e.EventCount || a.Kind != e.Kind)
                return $"window {window}: {a}, reference {e}";
            for (var v = 0; v < e.Values.Exact.Length; v++)
                if (!a.Values[v].Equals(e.Values.Exact[v])) return $"window {window}: value {v} {a.Values[v]}, reference {e.Values.Exact[v]}";
            if (Math.Abs(a.Values[e.Values.Exact.Length] - e.Values.Distinct) > 4 * HyperLogLogSketch.StandardError * e.Values.Distinct)
                return $"window {window}: distinct {a.Values[e.Values.Exact.Length]}, reference {e.Values.Distinct}";
        }

        return null;
    }
}
