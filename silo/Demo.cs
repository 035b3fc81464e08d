using System.Diagnostics;
using System.Globalization;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Windowing;

using Orleans.Pipeline.CommandLine;

namespace Orleans.Pipeline.Silo;

/// <summary>Options of <c>demo</c>: <c>--seconds 20 --keys 1000 --rate 0 --disorder 300 --postgres</c>.</summary>
internal sealed record DemoOptions(TimeSpan Duration, int Keys, int Rate, int DisorderMs, bool Postgres = false)
{
    public const string Usage =
        "usage: demo [--seconds N (20)] [--keys N (500)] [--rate events/s, 0 = as fast as possible (20000)] [--disorder ms (300)] " +
        "[--postgres: PostgreSQL mode, on Pipeline:ConnectionString or else a throwaway local server]";

    public static DemoOptions Parse(string[] args)
    {
        var options = new DemoOptions(TimeSpan.FromSeconds(20), 500, 20_000, 300);
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--postgres")
            {
                options = options with { Postgres = true };
                continue;
            }

            if (i + 1 >= args.Length) throw new ArgumentException($"option {name} needs a value");
            if (!int.TryParse(args[++i], NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                throw new ArgumentException($"option {name}: '{args[i]}' is not a non-negative whole number");
            options = name switch
            {
                "--seconds" when value > 0 => options with { Duration = TimeSpan.FromSeconds(value) },
                "--keys" when value > 0 => options with { Keys = value },
                "--rate" => options with { Rate = value },
                "--disorder" => options with { DisorderMs = value },
                "--seconds" or "--keys" => throw new ArgumentException($"option {name} must be > 0"),
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        return options;
    }
}

/// <summary>A synthetic workload through the client SDK, with live progress and a sample of closed windows.</summary>
internal sealed class Demo(IClusterClient cluster, DemoOptions options, PipelineDefinition pipeline)
{
    private long _finals;
    private long _updates;
    private long _late;
    private long _eventsInClosedWindows;
    private long _latencyTotalMs;
    private long _latencySamples;
    private readonly Queue<(string Key, WindowResult Result)> _sample = new();

    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        // A longer linger than the default: with many keys, fewer and larger batches keep the grains ahead.
        await using var client = new PipelineClient(cluster, new PipelineClientOptions { Linger = TimeSpan.FromMilliseconds(250) });
        var names = pipeline.OutputNames();
        await using var subscription = await client.SubscribeAsync(pipeline.Name, OnResults);
        Console.WriteLine($"publishing to '{pipeline.Name}' ({pipeline.Windowing.Window}): {options.Keys:N0} keys, " +
            $"{(options.Rate == 0 ? "as fast as possible" : $"{options.Rate:N0} events/s")}, disorder up to {options.DisorderMs} ms, for {options.Duration.TotalSeconds:N0} s (Ctrl-C stops)");

        var random = new Random(1);
        var stopwatch = Stopwatch.StartNew();
        var fields = new Dictionary<string, double>[options.Keys];
        long lastPublished = 0, lastClosedEvents = 0;
        var lastAt = TimeSpan.Zero;
        // Reported on its own task: while publishing waits (backpressure), the numbers still come.
        await using var status = LiveStatus.Start("demo", () =>
        {
            var at = stopwatch.Elapsed;
            var seconds = Math.Max(0.001, (at - lastAt).TotalSeconds);
            var published = client.PublishedEvents;
            var closedEvents = Interlocked.Read(ref _eventsInClosedWindows);
            IReadOnlyList<(string, string)> rows =
            [
                ("published", $"{published:N0} ({(published - lastPublished) / seconds:N0}/s)"),
                ("in closed windows", $"{(closedEvents - lastClosedEvents) / seconds:N0}/s"),
                ("windows closed", $"{Interlocked.Read(ref _finals):N0}"),
                ("updates", $"{Interlocked.Read(ref _updates):N0}"),
                ("late events", $"{Interlocked.Read(ref _late):N0}"),
                ("result latency", $"{AverageLatency():F0} ms"),
                ("backpressure waits", $"{client.BackpressureWaits:N0}"),
            ];
            (lastPublished, lastClosedEvents, lastAt) = (published, closedEvents, at);
            return rows;
        });
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var due = options.Rate == 0 ? long.MaxValue : (long)(stopwatch.Elapsed.TotalSeconds * options.Rate);
                for (var i = 0; i < 1_000 && client.PublishedEvents < due; i++)
                {
                    var key = random.Next(options.Keys);
                    var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                    var disorder = random.Next(100) < 2 ? random.Next(0, 3_000) : random.Next(0, options.DisorderMs + 1);
                    await client.PublishAsync(pipeline.Name, new PipelineEvent(
                        $"account-{key}",
                        now - disorder,
                        new Dictionary<string, double>
                        {
                            ["amount"] = Math.Round(random.NextDouble() * 100, 2),
                            ["user"] = random.Next(50),
                            ["latency"] = Math.Round(Math.Exp(random.NextDouble() * 6), 1),
                        }), cancellationToken);
                }

                if (client.PublishedEvents >= due) await Task.Delay(5, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }

        await client.FlushAsync(CancellationToken.None);
        Console.WriteLine();
        Console.WriteLine($"a sample of closed windows ({string.Join(", ", names)}):");
        lock (_sample)
        {
            foreach (var (key, result) in _sample)
            {
                var values = string.Join(", ", names.Zip(result.Values, (n, v) => $"{n}={v.ToString("0.##", CultureInfo.InvariantCulture)}"));
                Console.WriteLine($"  {key,-14} [{DateTimeOffset.FromUnixTimeMilliseconds(result.Start):HH:mm:ss.fff}, {DateTimeOffset.FromUnixTimeMilliseconds(result.End):HH:mm:ss.fff}) r{result.Revision} {result.Kind,-6} {values}");
            }
        }

        var seconds = stopwatch.Elapsed.TotalSeconds;
        return $"{client.PublishedEvents:N0} events published ({client.PublishedEvents / seconds:N0}/s), {_eventsInClosedWindows:N0} in closed windows, {_finals:N0} windows closed, {_updates:N0} updates, {_late:N0} late events, mean window-end-to-result latency {AverageLatency():F0} ms";
    }

    private double AverageLatency() => Interlocked.Read(ref _latencySamples) == 0 ? 0 : (double)Interlocked.Read(ref _latencyTotalMs) / Interlocked.Read(ref _latencySamples);

    private Task OnResults(ResultBatch batch)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var result in batch.Results)
        {
            if (result.Kind == ResultKind.Final)
            {
                Interlocked.Increment(ref _finals);
                Interlocked.Add(ref _eventsInClosedWindows, result.EventCount);
                // Window end to result: what a consumer waits for, given the disorder bound.
                Interlocked.Add(ref _latencyTotalMs, Math.Max(0, now - result.End));
                Interlocked.Increment(ref _latencySamples);
                lock (_sample)
                {
                    _sample.Enqueue((batch.Key, result));
                    if (_sample.Count > 6) _sample.Dequeue();
                }
            }
            else if (result.Kind == ResultKind.Update)
            {
                Interlocked.Increment(ref _updates);
            }
        }

        Interlocked.Add(ref _late, batch.LateEvents.Length);
        return Task.CompletedTask;
    }
}
