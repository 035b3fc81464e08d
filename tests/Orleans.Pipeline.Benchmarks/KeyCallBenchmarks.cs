using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Hosting;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Benchmarks;

/// <summary>
/// The floor under a per-key grain design: handing each of <see cref="Keys"/> keys a slice of
/// <see cref="EventsPerKey"/> events. The baseline applies the slices to the keys' engines held in one object (what
/// a partition that kept its keys' windows itself would do); the other hands each slice to the key's own grain with
/// one Orleans call, in parallel, on a local silo, every grain already active, nothing stored, nothing fired. The
/// system pays this and more (activation, state, results) for every key that receives events in a partition item:
/// with 10^5 keys and 1 s windows, at least once per key per second.
/// Run: <c>dotnet run -c Release --project tests/Orleans.Pipeline.Benchmarks -- --filter *KeyCall*</c>.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 3, iterationCount: 10)]
public class KeyCallBenchmarks
{
    /// <summary>The bench's pipeline: tumbling 1 s; count, sum, min, max.</summary>
    internal static readonly WindowingDefinition Definition = new(
        WindowSpec.Tumbling(1_000),
        [AggregationSpec.Count(), AggregationSpec.Sum("v"), AggregationSpec.Min("v"), AggregationSpec.Max("v")],
        MaxOutOfOrdernessMs: 200);

    private IHost? _host;
    private IBenchKeyGrain[] _grains = [];
    private WindowEngine[] _engines = [];
    private BenchSlice[] _slices = [];
    private readonly List<WindowResult> _output = [];

    [Params(10_000)]
    public int Keys { get; set; }

    [Params(1, 5)]
    public int EventsPerKey { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _host = Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.ClearProviders())
            .UseOrleans(silo => silo.UseLocalhostClustering(FreePorts.Next(), FreePorts.Next()))
            .Build();
        await _host.StartAsync();
        var grains = _host.Services.GetRequiredService<IGrainFactory>();
        _grains = [.. Enumerable.Range(0, Keys).Select(k => grains.GetGrain<IBenchKeyGrain>($"key-{k}"))];
        _engines = [.. Enumerable.Range(0, Keys).Select(_ => new WindowEngine(WindowPlan.For(Definition)))];
        // Event times a few ms apart, always in the same window: no window fires in either method.
        _slices = [.. Enumerable.Range(0, Keys).Select(k => new BenchSlice(
            [.. Enumerable.Range(0, EventsPerKey).Select(i => 1_767_225_600_000L + i)],
            [.. Enumerable.Range(0, EventsPerKey).Select(i => (double)(k + i))]))];
        // Every grain active before measuring: this is the cost of a call, not of an activation.
        await Task.WhenAll(_grains.Select((g, k) => g.ApplyAsync(_slices[k])));
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_host is null) return;
        await _host.StopAsync();
        _host.Dispose();
    }

    [Benchmark(Baseline = true)]
    public int EnginesInOnePlace()
    {
        var applied = 0;
        var row = new double[1];
        for (var k = 0; k < _engines.Length; k++)
        {
            var slice = _slices[k];
            for (var i = 0; i < slice.Times.Length; i++)
            {
                row[0] = slice.Values[i];
                _engines[k].Process(slice.Times[i], row, 0, _output);
                applied++;
            }
        }

        _output.Clear();
        return applied;
    }

    [Benchmark]
    public async Task<int> OneGrainCallPerKey()
    {
        var calls = new Task<int>[_grains.Length];
        for (var k = 0; k < _grains.Length; k++) calls[k] = _grains[k].ApplyAsync(_slices[k]);
        var applied = 0;
        foreach (var n in await Task.WhenAll(calls)) applied += n;
        return applied;
    }
}

/// <summary>One key's events, handed over without a copy.</summary>
[GenerateSerializer, Immutable]
public sealed record BenchSlice([property: Id(0)] long[] Times, [property: Id(1)] double[] Values);

public interface IBenchKeyGrain : IGrainWithStringKey
{
    Task<int> ApplyAsync(BenchSlice slice);
}

/// <summary>A key grain reduced to its engine.</summary>
public sealed class BenchKeyGrain : Grain, IBenchKeyGrain
{
    private readonly WindowEngine _engine = new(WindowPlan.For(KeyCallBenchmarks.Definition));
    private readonly List<WindowResult> _output = [];
    private readonly double[] _row = new double[1];

    public Task<int> ApplyAsync(BenchSlice slice)
    {
        for (var i = 0; i < slice.Times.Length; i++)
        {
            _row[0] = slice.Values[i];
            _engine.Process(slice.Times[i], _row, 0, _output);
        }

        _output.Clear();
        return Task.FromResult(slice.Times.Length);
    }
}
