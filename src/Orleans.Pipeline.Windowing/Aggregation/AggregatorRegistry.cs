using Orleans.Pipeline.Windowing.Sketches;

namespace Orleans.Pipeline.Windowing.Aggregation;

/// <summary>
/// Maps aggregation function names to aggregators. A new registry knows the built-in functions; register custom
/// ones with <see cref="Register"/> before pipelines that use them are built. Names are case-insensitive.
/// </summary>
public sealed class AggregatorRegistry
{
    private readonly Dictionary<string, Func<AggregationSpec, Aggregator>> _factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["count"] = _ => CountAggregator.Instance,
        ["sum"] = _ => SumAggregator.Instance,
        ["min"] = _ => MinAggregator.Instance,
        ["max"] = _ => MaxAggregator.Instance,
        ["avg"] = _ => AverageAggregator.Instance,
        ["first"] = _ => FirstAggregator.Instance,
        ["last"] = _ => LastAggregator.Instance,
        ["distinct"] = _ => new CustomAggregator<HyperLogLogSketch>(DistinctCountAggregate.Instance),
        ["top"] = spec => new CustomAggregator<TopValues>(new TopAggregate(TopAggregate.CountOf(spec), largest: true), TopAggregate.CountOf(spec)),
        ["bottom"] = spec => new CustomAggregator<TopValues>(new TopAggregate(TopAggregate.CountOf(spec), largest: false), TopAggregate.CountOf(spec)),
        ["quantile"] = spec => new CustomAggregator<QuantileSketch>(new QuantileAggregate(spec.Arguments ?? []), Math.Max(1, spec.Arguments?.Length ?? 0)),
    };

    /// <summary>The built-in functions.</summary>
    public static AggregatorRegistry Default { get; } = new();

    /// <summary>Function names known to this registry.</summary>
    public IEnumerable<string> Functions => _factories.Keys;

    /// <summary>Adds (or replaces) a function. The factory receives the spec and returns the aggregator to run.</summary>
    public AggregatorRegistry Register(string function, Func<AggregationSpec, Aggregator> factory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(function);
        ArgumentNullException.ThrowIfNull(factory);
        _factories[function] = factory;
        return this;
    }

    /// <summary>Adds a custom function over one field.</summary>
    public AggregatorRegistry Register<TState>(string function, IMergeableAggregate<TState> aggregate, int outputCount = 1)
        where TState : class =>
        Register(function, _ => new CustomAggregator<TState>(aggregate, outputCount));

    /// <summary>Returns the problems with <paramref name="spec"/>, or nothing when it can run.</summary>
    public IEnumerable<string> Validate(AggregationSpec spec)
    {
        if (string.IsNullOrWhiteSpace(spec.Function))
        {
            yield return "aggregation function is missing";
            yield break;
        }

        if (!_factories.ContainsKey(spec.Function))
        {
            yield return $"unknown aggregation function '{spec.Function}' (known: {string.Join(", ", _factories.Keys.Order(StringComparer.Ordinal))})";
            yield break;
        }

        var function = spec.Function.ToLowerInvariant();
        if (spec.Field is null && function != "count")
            yield return $"aggregation '{spec.OutputName}': function '{spec.Function}' needs a field";

        if (function is "top" or "bottom" && TopAggregate.CountOf(spec) == 0)
            yield return $"aggregation '{spec.OutputName}': {function} needs one argument, how many values it keeps: a whole number in [1, {TopAggregate.MaxCount}]";

        if (function == "quantile")
        {
            if (spec.Arguments is not { Length: > 0 })
                yield return $"aggregation '{spec.OutputName}': quantile needs at least one level in (0, 1], e.g. 0.5 or 0.99";
            else
                foreach (var level in spec.Arguments)
                    if (!(level > 0 && level <= 1))
                        yield return $"aggregation '{spec.OutputName}': quantile level {level} is not in (0, 1]";
        }
    }

    /// <summary>Creates the aggregator for <paramref name="spec"/>; throws <see cref="ArgumentException"/> naming the problem.</summary>
    public Aggregator Create(AggregationSpec spec)
    {
        var problems = Validate(spec).ToList();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(spec));
        return _factories[spec.Function](spec);
    }
}
