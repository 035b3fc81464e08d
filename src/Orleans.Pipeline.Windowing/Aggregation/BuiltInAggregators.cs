namespace Orleans.Pipeline.Windowing.Aggregation;

/// <summary>Counts values (or events, when the spec names no field). One slot.</summary>
internal sealed class CountAggregator : Aggregator
{
    public static readonly CountAggregator Instance = new();
    public override int ScalarSlots => 1;
    public override void Init(Span<double> slots, ref object? state) => slots[0] = 0;
    public override void Add(Span<double> slots, ref object? state, long eventTime, double value) => slots[0]++;
    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState) => slots[0] += otherSlots[0];
    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) => output[0] = slots[0];
}

/// <summary>Sum of values; 0 when there are none. One slot.</summary>
internal sealed class SumAggregator : Aggregator
{
    public static readonly SumAggregator Instance = new();
    public override int ScalarSlots => 1;
    public override void Init(Span<double> slots, ref object? state) => slots[0] = 0;
    public override void Add(Span<double> slots, ref object? state, long eventTime, double value) => slots[0] += value;
    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState) => slots[0] += otherSlots[0];
    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) => output[0] = slots[0];
}

/// <summary>Smallest value; NaN when there are none. One slot.</summary>
internal sealed class MinAggregator : Aggregator
{
    public static readonly MinAggregator Instance = new();
    public override int ScalarSlots => 1;
    public override void Init(Span<double> slots, ref object? state) => slots[0] = double.NaN;

    public override void Add(Span<double> slots, ref object? state, long eventTime, double value)
    {
        // NaN compares false, so the first value replaces the NaN that marks "none yet".
        if (!(slots[0] <= value)) slots[0] = value;
    }

    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState)
    {
        if (!double.IsNaN(otherSlots[0])) Add(slots, ref state, 0, otherSlots[0]);
    }

    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) => output[0] = slots[0];
}

/// <summary>Largest value; NaN when there are none. One slot.</summary>
internal sealed class MaxAggregator : Aggregator
{
    public static readonly MaxAggregator Instance = new();
    public override int ScalarSlots => 1;
    public override void Init(Span<double> slots, ref object? state) => slots[0] = double.NaN;

    public override void Add(Span<double> slots, ref object? state, long eventTime, double value)
    {
        if (!(slots[0] >= value)) slots[0] = value;
    }

    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState)
    {
        if (!double.IsNaN(otherSlots[0])) Add(slots, ref state, 0, otherSlots[0]);
    }

    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) => output[0] = slots[0];
}

/// <summary>Arithmetic mean; NaN when there are no values. Two slots: sum, count.</summary>
internal sealed class AverageAggregator : Aggregator
{
    public static readonly AverageAggregator Instance = new();
    public override int ScalarSlots => 2;

    public override void Init(Span<double> slots, ref object? state)
    {
        slots[0] = 0;
        slots[1] = 0;
    }

    public override void Add(Span<double> slots, ref object? state, long eventTime, double value)
    {
        slots[0] += value;
        slots[1]++;
    }

    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState)
    {
        slots[0] += otherSlots[0];
        slots[1] += otherSlots[1];
    }

    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) =>
        output[0] = slots[1] == 0 ? double.NaN : slots[0] / slots[1];
}

/// <summary>
/// Value of the event with the smallest event time; on equal times the one that arrived first. Two slots: time, value.
/// </summary>
internal sealed class FirstAggregator : Aggregator
{
    public static readonly FirstAggregator Instance = new();
    public override int ScalarSlots => 2;

    public override void Init(Span<double> slots, ref object? state)
    {
        slots[0] = double.PositiveInfinity;
        slots[1] = double.NaN;
    }

    public override void Add(Span<double> slots, ref object? state, long eventTime, double value)
    {
        if (eventTime < slots[0])
        {
            slots[0] = eventTime;
            slots[1] = value;
        }
    }

    // Merged windows never share an event time except through Add, so strict comparison keeps arrival order on ties.
    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState)
    {
        if (otherSlots[0] < slots[0])
        {
            slots[0] = otherSlots[0];
            slots[1] = otherSlots[1];
        }
    }

    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) => output[0] = slots[1];
}

/// <summary>
/// Value of the event with the largest event time; on equal times the one that arrived last. Two slots: time, value.
/// </summary>
internal sealed class LastAggregator : Aggregator
{
    public static readonly LastAggregator Instance = new();
    public override int ScalarSlots => 2;

    public override void Init(Span<double> slots, ref object? state)
    {
        slots[0] = double.NegativeInfinity;
        slots[1] = double.NaN;
    }

    public override void Add(Span<double> slots, ref object? state, long eventTime, double value)
    {
        if (eventTime >= slots[0])
        {
            slots[0] = eventTime;
            slots[1] = value;
        }
    }

    public override void Merge(Span<double> slots, ref object? state, ReadOnlySpan<double> otherSlots, object? otherState)
    {
        if (otherSlots[0] > slots[0] || (otherSlots[0] == slots[0] && !double.IsNegativeInfinity(otherSlots[0])))
        {
            slots[0] = otherSlots[0];
            slots[1] = otherSlots[1];
        }
    }

    public override void Result(ReadOnlySpan<double> slots, object? state, Span<double> output) => output[0] = slots[1];
}
