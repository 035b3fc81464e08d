using Microsoft.Extensions.DependencyInjection;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.Windowing;
using Orleans.Serialization;
using Xunit;

namespace Orleans.Pipeline.Tests.KeyState;

public sealed class ClosedWindowsTests
{
    /// <summary>What a key kept before: a list of results, the same window replaced, the oldest trimmed after each step.</summary>
    private static void RememberInList(List<WindowResult> closed, IEnumerable<WindowResult> step, int keep)
    {
        foreach (var result in step)
        {
            if (result.Kind is ResultKind.Partial) continue;
            closed.RemoveAll(r => r.Start == result.Start && r.End == result.End);
            if (result.Kind is ResultKind.Final or ResultKind.Update) closed.Add(result);
        }

        if (closed.Count > keep) closed.RemoveRange(0, closed.Count - keep);
    }

    private static WindowResult RandomResult(Random random, int width, bool labels)
    {
        var start = random.Next(12) * 1_000L;
        var kinds = new[] { ResultKind.Final, ResultKind.Final, ResultKind.Update, ResultKind.Retraction, ResultKind.Partial };
        return new WindowResult(start, start + 1_000, random.Next(1, 5), kinds[random.Next(kinds.Length)], random.Next(100),
            [.. Enumerable.Range(0, width).Select(_ => Math.Round(random.NextDouble() * 100, 2))], random.Next(20_000),
            labels && random.Next(2) == 0 ? [.. Enumerable.Range(0, width).Select(i => i == 0 ? null : $"k{random.Next(9)}")] : null);
    }

    private static void AssertSame(IReadOnlyList<WindowResult> expected, IReadOnlyList<WindowResult> actual, string context)
    {
        Assert.True(expected.Count == actual.Count, $"{context}: {actual.Count} windows kept, expected {expected.Count}");
        for (var i = 0; i < expected.Count; i++)
        {
            var (e, a) = (expected[i], actual[i]);
            Assert.True(e.Start == a.Start && e.End == a.End && e.Revision == a.Revision && e.Kind == a.Kind && e.EventCount == a.EventCount && e.Watermark == a.Watermark,
                $"{context}: window {i} is {a}, expected {e}");
            Assert.Equal(e.Values, a.Values);
            Assert.Equal(e.Labels, a.Labels);
        }
    }

    [Fact]
    public void Keep_exactly_the_windows_a_list_of_results_kept_over_random_emissions()
    {
        for (var seed = 0; seed < 300; seed++)
        {
            var random = new Random(seed);
            var keep = new[] { 0, 1, 2, 3, 5, 16 }[random.Next(6)];
            var labels = random.Next(3) == 0;
            var list = new List<WindowResult>();
            var closed = new ClosedWindows();
            for (var step = 0; step < 60; step++)
            {
                // Steps of one result mostly, now and then many (a key whose watermark jumped).
                var results = Enumerable.Range(0, random.Next(8) == 0 ? random.Next(2, 12) : 1).Select(_ => RandomResult(random, 3, labels)).ToList();
                RememberInList(list, results, keep);
                foreach (var result in results) closed.Remember(result);
                closed.Trim(keep);
                AssertSame(list, closed.ToArray(), $"seed {seed}, keep {keep}, step {step}");
            }
        }
    }

    [Fact]
    public void Windows_kept_before_the_outputs_changed_keep_their_first_values_and_NaN_where_they_have_none()
    {
        var closed = new ClosedWindows();
        closed.Remember(new WindowResult(0, 1_000, 1, ResultKind.Final, 3, [1, 2, 3], 1_000));
        closed.Remember(new WindowResult(1_000, 2_000, 1, ResultKind.Final, 2, [4, 5], 2_000));
        closed.Remember(new WindowResult(2_000, 3_000, 1, ResultKind.Final, 1, [6, 7, 8], 3_000));
        var windows = closed.ToArray();
        Assert.Equal([[1, 2, double.NaN], [4, 5, double.NaN], [6, 7, 8]], windows.Select(w => w.Values).ToArray());
    }

    [Fact]
    public void Grain_state_round_trips_and_a_state_stored_with_a_list_of_windows_is_read_into_the_arrays()
    {
        var services = new ServiceCollection().AddSerializer(b => b.AddAssembly(typeof(KeyGrainState).Assembly)).BuildServiceProvider();
        var serializer = services.GetRequiredService<Serializer<KeyGrainState>>();
        var random = new Random(7);
        var results = Enumerable.Range(0, 40).Select(_ => RandomResult(random, 4, labels: true)).ToList();
        var list = new List<WindowResult>();
        RememberInList(list, results, 16);

        // Stored by a build that kept a list.
        var older = serializer.Deserialize(serializer.SerializeToArray(new KeyGrainState { LastDelivery = 42, Closed = [.. list] }))!;
        older.Upgrade();
        Assert.Empty(older.Closed);
        Assert.Equal(42, older.LastDelivery);
        AssertSame(list, older.Recent.ToArray(), "upgraded");

        // Stored by this build, and read again.
        var state = new KeyGrainState();
        foreach (var result in results) state.Recent.Remember(result);
        state.Recent.Trim(16);
        var again = serializer.Deserialize(serializer.SerializeToArray(state))!;
        again.Upgrade();
        AssertSame(list, again.Recent.ToArray(), "round trip");
    }
}
