using BenchmarkDotNet.Attributes;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Benchmarks;

/// <summary>
/// Events per second through one key's engine, and bytes allocated per event.
/// <list type="bullet">
/// <item><c>ReadEvents</c>: the baseline, reading the same inputs without windowing; ratios are against it.</item>
/// <item><c>HotPath</c>: every event lands in a window that already exists (nothing fires): the path whose budget is 0 bytes.</item>
/// <item><c>Stream</c>: a realistic stream: windows open and fire every 1,000 events, 5% of events out of order.</item>
/// </list>
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public class WindowEngineBenchmarks
{
    public const int EventsPerInvoke = 1 << 20;

    private long[] _times = [];
    private double[] _values = [];
    private long[] _streamTimes = [];
    private WindowEngine _hotEngine = null!;
    private WindowEngine _streamEngine = null!;
    private readonly List<WindowResult> _output = new(1024);
    private long _shift;
    private long _streamSpan;

    [Params(WindowKind.Tumbling, WindowKind.Hopping, WindowKind.Session)]
    public WindowKind Kind { get; set; }

    [Params(1, 4)]
    public int Aggregations { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _times = new long[EventsPerInvoke];
        _streamTimes = new long[EventsPerInvoke];
        _values = new double[EventsPerInvoke];
        for (var i = 0; i < EventsPerInvoke; i++)
        {
            _times[i] = 1_000_000 + i;
            _values[i] = random.Next(0, 1000);
            // 1 ms apart; every 20th event is up to 50 ms late; sessions pause 200 ms after every 1,000 events.
            var time = 1_000_000L + i + (Kind == WindowKind.Session ? i / 1000 * 200 : 0);
            _streamTimes[i] = i % 20 == 0 ? time - random.Next(0, 50) : time;
        }

        _streamSpan = _streamTimes[^1] + 10_000;
        _hotEngine = new WindowEngine(Definition(hot: true));
        _streamEngine = new WindowEngine(Definition(hot: false));
        HotPath(); // the hot path starts with its windows in place
    }

    private WindowingDefinition Definition(bool hot)
    {
        var window = (Kind, hot) switch
        {
            (WindowKind.Tumbling, true) => WindowSpec.Tumbling(1L << 40),
            (WindowKind.Hopping, true) => WindowSpec.Hopping(4L << 40, 1L << 40),
            (WindowKind.Session, true) => WindowSpec.Session(1L << 40),
            (WindowKind.Tumbling, false) => WindowSpec.Tumbling(1_000),
            (WindowKind.Hopping, false) => WindowSpec.Hopping(1_000, 250),
            _ => WindowSpec.Session(100),
        };
        AggregationSpec[] aggregations = Aggregations == 1
            ? [AggregationSpec.Sum("v")]
            : [AggregationSpec.Sum("v"), AggregationSpec.Min("v"), AggregationSpec.Max("v"), AggregationSpec.Avg("v")];
        return new WindowingDefinition(window, aggregations, MaxOutOfOrdernessMs: 50);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = EventsPerInvoke)]
    public double ReadEvents()
    {
        var sum = 0.0;
        var times = _times;
        var values = _values;
        for (var i = 0; i < times.Length; i++) sum += values[i] + times[i];
        return sum;
    }

    [Benchmark(OperationsPerInvoke = EventsPerInvoke)]
    public int HotPath()
    {
        var engine = _hotEngine;
        var output = _output;
        var times = _times;
        var values = _values;
        for (var i = 0; i < times.Length; i++)
            engine.Process(times[i], values.AsSpan(i, 1), 0, output);
        return output.Count;
    }

    [Benchmark(OperationsPerInvoke = EventsPerInvoke)]
    public int Stream()
    {
        var engine = _streamEngine;
        var output = _output;
        var times = _streamTimes;
        var values = _values;
        var shift = _shift;
        for (var i = 0; i < times.Length; i++)
        {
            engine.Process(times[i] + shift, values.AsSpan(i, 1), 0, output);
            if (output.Count > 512) output.Clear();
        }

        _shift += _streamSpan;
        return output.Count;
    }
}
