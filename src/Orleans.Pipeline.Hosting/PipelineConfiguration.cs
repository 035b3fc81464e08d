using Microsoft.Extensions.Configuration;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Hosting;

/// <summary>
/// Reads pipelines from configuration (<c>appsettings.json</c>, environment variables such as
/// <c>Pipeline__Pipelines__payments__Window__Size=00:01:00</c>). Every problem is reported with the pipeline's name.
/// </summary>
public static class PipelineConfiguration
{
    /// <summary>The configuration section holding pipelines by name.</summary>
    public const string Section = "Pipeline:Pipelines";

    /// <summary>The pipelines under <see cref="Section"/>; throws one <see cref="ArgumentException"/> listing every problem.</summary>
    public static IReadOnlyList<PipelineDefinition> Read(IConfiguration configuration, AggregatorRegistry? registry = null)
    {
        var pipelines = new List<PipelineDefinition>();
        var problems = new List<string>();
        foreach (var section in configuration.GetSection(Section).GetChildren())
        {
            var name = section.Key;
            PipelineSettings? settings;
            try
            {
                settings = section.Get<PipelineSettings>();
            }
            catch (InvalidOperationException e)
            {
                problems.Add($"pipeline '{name}': {e.Message}");
                continue;
            }

            if (settings is null)
            {
                problems.Add($"pipeline '{name}': empty definition");
                continue;
            }

            var definition = settings.ToDefinition(name, problems);
            if (definition is null) continue;
            var invalid = definition.Validate(registry).ToList();
            if (invalid.Count > 0) problems.AddRange(invalid);
            else pipelines.Add(definition);
        }

        if (problems.Count > 0) throw new ArgumentException("invalid pipeline configuration: " + string.Join("; ", problems));
        return pipelines;
    }

    /// <summary>One pipeline as configuration spells it.</summary>
    public sealed class PipelineSettings
    {
        public WindowSettings? Window { get; set; }
        public TimeMode TimeMode { get; set; } = TimeMode.EventTime;
        public TimeSpan MaxOutOfOrderness { get; set; }
        public TimeSpan AllowedLateness { get; set; }
        public TimeSpan? IdleTimeout { get; set; }
        public TimeSpan? EarlyFiring { get; set; }
        public string KeyField { get; set; } = "key";
        public string TimeField { get; set; } = "time";
        public int ClosedWindowsKept { get; set; } = 16;
        public int Partitions { get; set; } = PipelineDefinition.DefaultPartitions;
        public TimeSpan MaxTimeAhead { get; set; } = TimeSpan.FromMilliseconds(PipelineDefinition.DefaultMaxTimeAheadMs);
        public List<AggregationSettings> Aggregations { get; set; } = [];

        /// <summary>For a chained pipeline: <c>Input:Pipeline</c> and <c>Input:KeyBy</c> (see <see cref="ChainInput"/>).</summary>
        public InputSettings? Input { get; set; }

        internal PipelineDefinition? ToDefinition(string name, List<string> problems)
        {
            if (Window is null)
            {
                problems.Add($"pipeline '{name}': window is missing (Window:Kind = Tumbling, Hopping or Session)");
                return null;
            }

            var window = new WindowSpec(
                Window.Kind,
                Ms(Window.Size),
                Window.Kind == WindowKind.Tumbling ? Ms(Window.Size) : Ms(Window.Slide),
                Ms(Window.Gap),
                Ms(Window.Offset));
            var aggregations = Aggregations
                .Select(a => new AggregationSpec(a.Function ?? "", a.Field, a.Name, a.Arguments is { Length: > 0 } ? a.Arguments : a.Levels is { Length: > 0 } ? a.Levels : null))
                .ToArray();
            return new PipelineDefinition(
                name,
                new WindowingDefinition(
                    window, aggregations, TimeMode, Ms(MaxOutOfOrderness), Ms(AllowedLateness),
                    IdleTimeout is { } idle ? Ms(idle) : null,
                    EarlyFiring is { } early ? Ms(early) : null),
                KeyField,
                TimeField,
                ClosedWindowsKept,
                Partitions,
                Ms(MaxTimeAhead),
                Input is null ? null : new ChainInput(Input.Pipeline ?? "", Input.KeyBy ?? "key"));
        }
    }

    public sealed class WindowSettings
    {
        public WindowKind Kind { get; set; }
        public TimeSpan Size { get; set; }
        public TimeSpan Slide { get; set; }
        public TimeSpan Gap { get; set; }
        public TimeSpan Offset { get; set; }
    }

    public sealed class InputSettings
    {
        public string? Pipeline { get; set; }
        public string? KeyBy { get; set; }
    }

    public sealed class AggregationSettings
    {
        public string? Function { get; set; }
        public string? Field { get; set; }
        public string? Name { get; set; }
        public double[]? Levels { get; set; }

        /// <summary>Function arguments (<c>top</c>/<c>bottom</c>: how many values; <c>quantile</c>: its levels, like <see cref="Levels"/>).</summary>
        public double[]? Arguments { get; set; }
    }

    private static long Ms(TimeSpan span) => (long)span.TotalMilliseconds;
    private static long Ms(TimeSpan? span) => span is { } s ? (long)s.TotalMilliseconds : 0;
}
