using System.Runtime.CompilerServices;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Windowing;

/// <summary>
/// A <see cref="WindowingDefinition"/> validated and compiled once: its aggregators with their slot layout, the fields
/// it reads, the names of its outputs and its state layout. Immutable and shared by every <see cref="WindowEngine"/>
/// that runs the definition, so a key's engine is built without validating, resolving aggregators or formatting
/// strings again (a silo builds one per key activation, and holds up to millions).
/// </summary>
public sealed class WindowPlan
{
    private static readonly ConditionalWeakTable<WindowingDefinition, ConditionalWeakTable<AggregatorRegistry, WindowPlan>> Plans = new();

    private WindowPlan(WindowingDefinition definition, AggregatorRegistry registry)
    {
        var problems = definition.Validate(registry).ToList();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(definition));

        Definition = definition;
        var fields = definition.Fields.ToArray();
        Fields = fields;
        Aggregators = new CompiledAggregator[definition.Aggregations.Length];
        var names = new List<string>();
        for (var i = 0; i < Aggregators.Length; i++)
        {
            var spec = definition.Aggregations[i];
            var aggregator = registry.Create(spec);
            Aggregators[i] = new CompiledAggregator(
                aggregator,
                spec.Field is null ? -1 : Array.IndexOf(fields, spec.Field),
                SlotCount,
                aggregator.ScalarSlots,
                aggregator.UsesObjectState ? ObjectCount : -1,
                OutputCount,
                aggregator.OutputCount);
            SlotCount += aggregator.ScalarSlots;
            if (aggregator.UsesObjectState) ObjectCount++;
            OutputCount += aggregator.OutputCount;
            names.AddRange(aggregator.OutputNames(spec));
        }

        OutputNames = names.ToArray();
        Layout = definition.Layout;
    }

    /// <summary>
    /// The plan of <paramref name="definition"/> under <paramref name="registry"/> (the default registry when null);
    /// compiled on first use and kept as long as both are alive.
    /// </summary>
    /// <exception cref="ArgumentException">The definition is invalid.</exception>
    public static WindowPlan For(WindowingDefinition definition, AggregatorRegistry? registry = null)
    {
        ArgumentNullException.ThrowIfNull(definition);
        registry ??= AggregatorRegistry.Default;
        var byRegistry = Plans.GetValue(definition, _ => new ConditionalWeakTable<AggregatorRegistry, WindowPlan>());
        if (byRegistry.TryGetValue(registry, out var plan)) return plan;
        plan = Compile(definition, registry);
        return byRegistry.GetValue(registry, _ => plan);
    }

    /// <summary>Validates and compiles <paramref name="definition"/> afresh (uncached; <see cref="For"/> keeps one per definition).</summary>
    /// <exception cref="ArgumentException">The definition is invalid.</exception>
    public static WindowPlan Compile(WindowingDefinition definition, AggregatorRegistry? registry = null)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new WindowPlan(definition, registry ?? AggregatorRegistry.Default);
    }

    /// <summary>The definition compiled.</summary>
    public WindowingDefinition Definition { get; }

    /// <summary>The fields whose values an engine expects per event, in order.</summary>
    public IReadOnlyList<string> Fields { get; }

    /// <summary>The names of the values in every <see cref="WindowResult.Values"/>, in order.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>The layout of persisted window state (<see cref="WindowingDefinition.Layout"/>).</summary>
    public string Layout { get; }

    internal CompiledAggregator[] Aggregators { get; }

    internal int SlotCount { get; }

    internal int ObjectCount { get; }

    internal int OutputCount { get; }
}

/// <summary>One aggregation of a plan: its aggregator, the field it reads, and where its slots, object state and outputs sit.</summary>
internal readonly record struct CompiledAggregator(
    Aggregator Aggregator,
    int Field,
    int SlotOffset,
    int SlotCount,
    int ObjectIndex,
    int OutputOffset,
    int OutputCount);
