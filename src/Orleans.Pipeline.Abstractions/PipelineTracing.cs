using System.Diagnostics;

namespace Orleans.Pipeline;

/// <summary>
/// The project's traces, activity source <c>Orleans.Pipeline</c>: a producer's send of a partition item
/// (<c>pipeline.send</c>, linked to the publishers whose events it carries), the partition's apply of that item
/// (<c>pipeline.partition.apply</c>, its child across processes: the item carries its <c>traceparent</c>), each key's
/// apply (<c>pipeline.key.apply</c>, through Orleans' activity propagation) and the key's state write
/// (<c>pipeline.state.write</c>). Nothing is recorded unless a listener samples the source.
/// </summary>
public static class PipelineTracing
{
    /// <summary>The activity source's name, to enable it in an exporter.</summary>
    public const string Name = "Orleans.Pipeline";

    /// <summary>The source.</summary>
    public static readonly ActivitySource Source = new(Name, "1.0");
}
