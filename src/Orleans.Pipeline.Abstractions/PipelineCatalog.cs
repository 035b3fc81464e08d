using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline;

/// <summary>The pipelines a silo runs, validated once at start-up.</summary>
public sealed class PipelineCatalog
{
    private readonly Dictionary<string, PipelineDefinition> _pipelines;

    /// <summary>Validates every definition; throws one <see cref="ArgumentException"/> listing all problems.</summary>
    public PipelineCatalog(IEnumerable<PipelineDefinition> pipelines, AggregatorRegistry? registry = null)
    {
        Registry = registry ?? AggregatorRegistry.Default;
        var list = pipelines.ToList();
        var problems = list.SelectMany(p => p.Validate(Registry)).ToList();
        problems.AddRange(list.GroupBy(p => p.Name, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"pipeline '{g.Key}' is defined more than once"));
        if (problems.Count == 0) problems.AddRange(PipelineDefinition.ValidateChains(list, Registry));
        if (problems.Count > 0) throw new ArgumentException("invalid pipeline configuration: " + string.Join("; ", problems));
        _pipelines = list.ToDictionary(p => p.Name, StringComparer.Ordinal);
        _downstreams = list.Where(p => p.Input is not null).GroupBy(p => p.Input!.Pipeline, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);
    }

    private readonly Dictionary<string, PipelineDefinition[]> _downstreams;

    /// <summary>The pipelines that read <paramref name="name"/>'s results (empty when none).</summary>
    public IReadOnlyList<PipelineDefinition> DownstreamsOf(string name) => _downstreams.GetValueOrDefault(name) ?? [];

    /// <summary>The aggregators the pipelines may use.</summary>
    public AggregatorRegistry Registry { get; }

    /// <summary>All pipelines.</summary>
    public IReadOnlyCollection<PipelineDefinition> All => _pipelines.Values;

    /// <summary>The pipeline named <paramref name="name"/>, or null.</summary>
    public PipelineDefinition? Find(string name) => _pipelines.GetValueOrDefault(name);
}
