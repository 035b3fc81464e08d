using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline;

/// <summary>
/// Fluent definition of a pipeline in C#:
/// <c>PipelineBuilder.Named("payments").Tumbling(TimeSpan.FromMinutes(1)).Disorder(TimeSpan.FromSeconds(5)).Count().Sum("amount").Build()</c>.
/// <see cref="Build"/> validates and throws one <see cref="ArgumentException"/> listing every problem.
/// </summary>
public sealed class PipelineBuilder
{
    private readonly string _name;
    private readonly List<AggregationSpec> _aggregations = [];
    private WindowSpec? _window;
    private TimeMode _timeMode = TimeMode.EventTime;
    private long _disorder;
    private long _lateness;
    private long? _idle;
    private long? _early;
    private string _keyField = "key";
    private string _timeField = "time";
    private int _closedKept = 16;
    private int _partitions = PipelineDefinition.DefaultPartitions;
    private long _maxTimeAheadMs = PipelineDefinition.DefaultMaxTimeAheadMs;
    private ChainInput? _input;

    private PipelineBuilder(string name) => _name = name;

    /// <summary>Starts a pipeline definition.</summary>
    public static PipelineBuilder Named(string name) => new(name);

    public PipelineBuilder Tumbling(TimeSpan size, TimeSpan offset = default) => Window(WindowSpec.Tumbling(Ms(size), Ms(offset)));
    public PipelineBuilder Hopping(TimeSpan size, TimeSpan slide, TimeSpan offset = default) => Window(WindowSpec.Hopping(Ms(size), Ms(slide), Ms(offset)));
    public PipelineBuilder Session(TimeSpan gap) => Window(WindowSpec.Session(Ms(gap)));

    public PipelineBuilder Window(WindowSpec window)
    {
        _window = window;
        return this;
    }

    public PipelineBuilder ProcessingTime()
    {
        _timeMode = TimeMode.ProcessingTime;
        return this;
    }

    /// <summary>Max out-of-orderness: the watermark trails the highest event time by this much.</summary>
    public PipelineBuilder Disorder(TimeSpan disorder) => Set(() => _disorder = Ms(disorder));

    public PipelineBuilder AllowedLateness(TimeSpan lateness) => Set(() => _lateness = Ms(lateness));
    public PipelineBuilder IdleTimeout(TimeSpan? idle) => Set(() => _idle = idle is { } i ? Ms(i) : null);
    public PipelineBuilder EarlyFiring(TimeSpan? interval) => Set(() => _early = interval is { } i ? Ms(i) : null);
    public PipelineBuilder KeyField(string name) => Set(() => _keyField = name);
    public PipelineBuilder TimeField(string name) => Set(() => _timeField = name);
    public PipelineBuilder KeepClosedWindows(int count) => Set(() => _closedKept = count);

    /// <summary>Stream partitions (see <see cref="PipelineDefinition.Partitions"/>).</summary>
    public PipelineBuilder Partitions(int count) => Set(() => _partitions = count);

    /// <summary>How far ahead of the clock an event time may be (see <see cref="PipelineDefinition.MaxTimeAheadMs"/>; zero: no limit).</summary>
    public PipelineBuilder MaxTimeAhead(TimeSpan ahead) => Set(() => _maxTimeAheadMs = (long)ahead.TotalMilliseconds);

    /// <summary>
    /// Reads another pipeline's results instead of published events (see <see cref="ChainInput"/>): <paramref name="keyBy"/>
    /// is <c>key</c>, <c>all</c>, <c>hash:N</c>, <c>prefix:SEP</c> or <c>field:NAME</c>; aggregations read the input's output names.
    /// </summary>
    public PipelineBuilder From(string pipeline, string keyBy = "key") => Set(() => _input = new ChainInput(pipeline, keyBy));

    public PipelineBuilder Aggregate(AggregationSpec aggregation) => Set(() => _aggregations.Add(aggregation));
    public PipelineBuilder Count(string? field = null, string? name = null) => Aggregate(AggregationSpec.Count(field, name));
    public PipelineBuilder Sum(string field, string? name = null) => Aggregate(AggregationSpec.Sum(field, name));
    public PipelineBuilder Min(string field, string? name = null) => Aggregate(AggregationSpec.Min(field, name));
    public PipelineBuilder Max(string field, string? name = null) => Aggregate(AggregationSpec.Max(field, name));
    public PipelineBuilder Avg(string field, string? name = null) => Aggregate(AggregationSpec.Avg(field, name));
    public PipelineBuilder First(string field, string? name = null) => Aggregate(AggregationSpec.First(field, name));
    public PipelineBuilder Last(string field, string? name = null) => Aggregate(AggregationSpec.Last(field, name));
    public PipelineBuilder Distinct(string field, string? name = null) => Aggregate(AggregationSpec.Distinct(field, name));
    public PipelineBuilder Quantiles(string field, params double[] levels) => Aggregate(AggregationSpec.Quantiles(field, levels));

    /// <summary>The validated definition.</summary>
    public PipelineDefinition Build(AggregatorRegistry? registry = null)
    {
        if (_window is null) throw new ArgumentException($"pipeline '{_name}': no window (call Tumbling, Hopping or Session)");
        var definition = new PipelineDefinition(
            _name,
            new WindowingDefinition(_window, [.. _aggregations], _timeMode, _disorder, _lateness, _idle, _early),
            _keyField,
            _timeField,
            _closedKept,
            _partitions,
            _maxTimeAheadMs,
            _input);
        var problems = definition.Validate(registry).ToList();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems));
        return definition;
    }

    private PipelineBuilder Set(Action set)
    {
        set();
        return this;
    }

    private static long Ms(TimeSpan span) => (long)span.TotalMilliseconds;
}
