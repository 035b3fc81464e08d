namespace Orleans.Pipeline.Windowing.Aggregation;

/// <summary>
/// An aggregation function as the engine runs it. Every window holds, per aggregator, <see cref="ScalarSlots"/>
/// doubles inline and, when <see cref="UsesObjectState"/>, one object (a sketch, say). Keeping scalar state in the
/// window's own array is what makes the hot path allocation-free.
/// </summary>
/// <remarks>
/// Contract: <see cref="Add"/> is called once per event that has the field (missing values, NaN, are never passed);
/// <see cref="Merge"/> folds another window's state into this one (session merges) and must give the same result as
/// adding the other window's events, up to the aggregator's stated error; <see cref="Result"/> does not change state.
/// Object state must be serializable by Orleans (<c>[GenerateSerializer]</c>). Implement
/// <see cref="IMergeableAggregate{TState}"/> for a custom aggregator instead of deriving from this class.
/// </remarks>
public abstract class Aggregator
{
    /// <summary>Doubles of state kept inline per window.</summary>
    public abstract int ScalarSlots { get; }

    /// <summary>Whether the aggregator keeps an object per window.</summary>
    public virtual bool UsesObjectState => false;

    /// <summary>How many values <see cref="Result"/> writes.</summary>
    public virtual int OutputCount => 1;

    /// <summary>Names of the outputs, given the spec's output name.</summary>
    public virtual IReadOnlyList<string> OutputNames(AggregationSpec spec) => [spec.OutputName];

    /// <summary>Sets up the state of a new window.</summary>
    public abstract void Init(Span<double> slots, ref object? state);

    /// <summary>Applies one value at <paramref name="eventTime"/>.</summary>
    public abstract void Add(Span<double> slots, ref object? state, long eventTime, double value);

    /// <summary>Folds <paramref name="otherSlots"/>/<paramref name="otherState"/> into this state.</summary>
    public abstract void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState);

    /// <summary>Writes <see cref="OutputCount"/> values.</summary>
    public abstract void Result(ReadOnlySpan<double> slots, object? state, Span<double> output);
}

/// <summary>
/// A custom aggregation function over one numeric field. The state must be mergeable and serializable by Orleans
/// (mark it <c>[GenerateSerializer]</c>); it is created per window and persisted with the window.
/// </summary>
/// <typeparam name="TState">The per-window state.</typeparam>
public interface IMergeableAggregate<TState> where TState : class
{
    /// <summary>Names of the outputs, given the spec; most aggregates return just <c>[spec.OutputName]</c>.</summary>
    IReadOnlyList<string> OutputNames(AggregationSpec spec) => [spec.OutputName];

    /// <summary>A new, empty state.</summary>
    TState Create();

    /// <summary>Applies one value.</summary>
    void Add(TState state, long eventTime, double value);

    /// <summary>Folds <paramref name="other"/> into <paramref name="into"/>; <paramref name="other"/> is discarded afterwards.</summary>
    void Merge(TState into, TState other);

    /// <summary>Writes the outputs (as many as <see cref="OutputNames"/> returns).</summary>
    void Result(TState state, Span<double> output);
}

/// <summary>Runs an <see cref="IMergeableAggregate{TState}"/> inside the engine.</summary>
public sealed class CustomAggregator<TState>(IMergeableAggregate<TState> aggregate, int outputCount = 1) : Aggregator
    where TState : class
{
    public override int ScalarSlots => 0;
    public override bool UsesObjectState => true;
    public override int OutputCount => outputCount;
    public override IReadOnlyList<string> OutputNames(AggregationSpec spec) => aggregate.OutputNames(spec);

    public override void Init(Span<double> slots, ref object? state) => state = aggregate.Create();

    public override void Add(Span<double> slots, ref object? state, long eventTime, double value) =>
        aggregate.Add((TState)state!, eventTime, value);

    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState) =>
        aggregate.Merge((TState)state!, (TState)otherState!);

    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) =>
        aggregate.Result((TState)state!, output);
}
