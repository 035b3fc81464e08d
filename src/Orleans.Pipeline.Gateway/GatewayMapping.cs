using Orleans.Pipeline.Windowing;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Gateway;

/// <summary>Between the wire types and the pipeline's own.</summary>
internal static class GatewayMapping
{
    public static V1.PipelineInfo ToInfo(PipelineDefinition pipeline)
    {
        var w = pipeline.Windowing;
        var info = new V1.PipelineInfo
        {
            Name = pipeline.Name,
            WindowKind = w.Window.Kind.ToString().ToUpperInvariant(),
            SizeMs = w.Window.SizeMs,
            SlideMs = w.Window.SlideMs,
            GapMs = w.Window.GapMs,
            OffsetMs = w.Window.OffsetMs,
            TimeMode = w.TimeMode == TimeMode.EventTime ? "EVENT_TIME" : "PROCESSING_TIME",
            MaxOutOfOrdernessMs = w.MaxOutOfOrdernessMs,
            AllowedLatenessMs = w.AllowedLatenessMs,
        };
        if (w.IdleTimeoutMs is { } idle) info.IdleTimeoutMs = idle;
        if (w.EarlyFiringIntervalMs is { } early) info.EarlyFiringIntervalMs = early;
        info.Fields.AddRange(w.Fields);
        info.Outputs.AddRange(pipeline.OutputNames());
        if (pipeline.Input is { } input)
        {
            info.InputPipeline = input.Pipeline;
            info.InputKeyBy = input.KeyBy;
        }

        return info;
    }

    public static V1.WindowResult ToWire(WindowResult result, IReadOnlyList<string> outputs)
    {
        var wire = new V1.WindowResult
        {
            StartMs = result.Start,
            EndMs = result.End,
            Revision = result.Revision,
            Kind = result.Kind.ToString().ToUpperInvariant(),
            EventCount = result.EventCount,
            Watermark = result.Watermark,
        };
        Name(result.Values, outputs, wire.Values);
        for (var i = 0; result.Labels is { } labels && i < labels.Length && i < outputs.Count; i++)
        {
            if (labels[i] is { } label) wire.Labels[outputs[i]] = label;
        }

        return wire;
    }

    public static V1.LateEvent ToWire(LateEvent late, IReadOnlyList<string> fields)
    {
        var wire = new V1.LateEvent { TimeMs = late.TimeMs, Watermark = late.Watermark };
        Name(late.Values, fields, wire.Fields);
        return wire;
    }

    /// <summary>Values by name; a value that is missing (NaN) is left out.</summary>
    private static void Name(double[] values, IReadOnlyList<string> names, IDictionary<string, double> into)
    {
        for (var i = 0; i < values.Length && i < names.Count; i++)
        {
            if (double.IsFinite(values[i])) into[names[i]] = values[i];
        }
    }

    public static PipelineEvent FromWire(V1.Event e) => new(e.Key, e.TimeMs, e.Fields);
}
