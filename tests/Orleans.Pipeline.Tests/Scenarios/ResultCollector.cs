using System.Collections.Concurrent;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.Scenarios;

/// <summary>Collects a pipeline's live results per key, as a consumer would upsert them.</summary>
public sealed class ResultCollector
{
    private readonly ConcurrentDictionary<(string Pipeline, string Key), List<WindowResult>> _byKey = new();

    private readonly ConcurrentDictionary<(string, string, long, long, int, ResultKind), bool> _seen = new();

    /// <summary>Adds a batch's results; a result seen before (the same batch read back from the log) is not added again.</summary>
    public void Add(ResultBatch batch)
    {
        var list = _byKey.GetOrAdd((batch.Pipeline, batch.Key), _ => []);
        lock (list)
        {
            foreach (var r in batch.Results)
            {
                if (_seen.TryAdd((batch.Pipeline, batch.Key, r.Start, r.End, r.Revision, r.Kind), true)) list.Add(r);
            }
        }
    }

    /// <summary>The latest revision per window, retractions removed, partial (early) results ignored.</summary>
    public Dictionary<(long, long), WindowResult> View(string pipeline, string key)
    {
        var view = new Dictionary<(long, long), WindowResult>();
        if (!_byKey.TryGetValue((pipeline, key), out var list)) return view;
        lock (list)
        {
            foreach (var r in list.Where(r => r.Kind != ResultKind.Partial))
            {
                if (r.Kind == ResultKind.Retraction) view.Remove((r.Start, r.End));
                else view[(r.Start, r.End)] = r;
            }
        }

        return view;
    }

    /// <summary>Every window's revisions arrived once each, in increasing order.</summary>
    public void AssertEachRevisionOnceInOrder(string pipeline, string key)
    {
        var list = _byKey.GetValueOrDefault((pipeline, key)) ?? [];
        lock (list)
        {
            foreach (var window in list.GroupBy(r => (r.Start, r.End)))
            {
                var revisions = window.Select(r => r.Revision).ToList();
                Assert.True(revisions.SequenceEqual(revisions.Order()) && revisions.Distinct().Count() == revisions.Count,
                    $"window [{window.Key.Start}, {window.Key.End}) of '{key}' arrived with revisions {string.Join(", ", revisions)}");
            }
        }
    }
}
