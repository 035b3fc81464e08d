using Orleans.Pipeline.Windowing;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>Results received from the gateway, folded as a consumer holds them: latest revision per window, retractions removed.</summary>
internal static class WireView
{
    public static void Apply(Dictionary<(long, long), WindowResult> view, V1.WindowResult r, IReadOnlyList<string> outputs)
    {
        var kind = Enum.Parse<ResultKind>(r.Kind, ignoreCase: true);
        if (kind == ResultKind.Partial) return;
        if (kind == ResultKind.Retraction)
        {
            view.Remove((r.StartMs, r.EndMs));
            return;
        }

        var values = outputs.Select(n => r.Values.TryGetValue(n, out var v) ? v : double.NaN).ToArray();
        view[(r.StartMs, r.EndMs)] = new WindowResult(r.StartMs, r.EndMs, r.Revision, kind, r.EventCount, values, r.Watermark);
    }
}
