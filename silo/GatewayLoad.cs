using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using Orleans.Pipeline.Client;

using Orleans.Pipeline.CommandLine;

namespace Orleans.Pipeline.Silo;

/// <summary>Options of <c>gateway-load</c>.</summary>
internal sealed record GatewayLoadOptions(Uri Url, TimeSpan Duration, int Keys, int BatchSize, int Concurrency, string Pipeline, string? ApiKey)
{
    public const string Usage =
        "usage: gateway-load [--url http://127.0.0.1:5080] [--seconds 10] [--keys 500] [--batch 500] [--concurrency 16] [--pipeline demo] [--api-key KEY]";

    public static GatewayLoadOptions Parse(string[] args)
    {
        var options = new GatewayLoadOptions(new Uri("http://127.0.0.1:5080"), TimeSpan.FromSeconds(10), 500, 500, 16, "demo", null);
        for (var i = 0; i < args.Length; i += 2)
        {
            var name = args[i];
            if (i + 1 >= args.Length) throw new ArgumentException($"option {name} needs a value");
            var value = args[i + 1];
            int Number() => int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                ? n : throw new ArgumentException($"option {name}: '{value}' is not a positive whole number");
            options = name switch
            {
                "--url" => options with { Url = Uri.TryCreate(value, UriKind.Absolute, out var url) ? url : throw new ArgumentException($"option --url: '{value}' is not a URL") },
                "--seconds" => options with { Duration = TimeSpan.FromSeconds(Number()) },
                "--keys" => options with { Keys = Number() },
                "--batch" => options with { BatchSize = Number() },
                "--concurrency" => options with { Concurrency = Number() },
                "--pipeline" => options with { Pipeline = value },
                "--api-key" => options with { ApiKey = value },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        return options;
    }
}

/// <summary>
/// A load generator for the gateway, meant to run as its own process: publishes requests of random keys as fast as
/// the gateway takes them, from several concurrent callers, through the .NET gateway client (which waits out
/// RESOURCE_EXHAUSTED), and prints events per second each second and at the end.
/// </summary>
internal static class GatewayLoad
{
    public static async Task<int> RunAsync(GatewayLoadOptions options)
    {
        using var client = new PipelineGatewayClient(options.Url, new PipelineGatewayClientOptions { ApiKey = options.ApiKey });
        var pipelines = await client.ListPipelinesAsync();
        var pipeline = pipelines.FirstOrDefault(p => p.Name == options.Pipeline)
            ?? throw new ArgumentException($"the gateway has no pipeline '{options.Pipeline}' (it has: {string.Join(", ", pipelines.Select(p => p.Name))})");
        Console.WriteLine($"publishing to '{pipeline.Name}' at {options.Url}: {options.Concurrency} concurrent requests of {options.BatchSize} events over {options.Keys:N0} keys, for {options.Duration.TotalSeconds:N0} s");

        long published = 0;
        var latencies = new List<double>();
        using var stop = new CancellationTokenSource(options.Duration);
        var stopwatch = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, options.Concurrency).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            var local = new List<double>();
            while (!stop.IsCancellationRequested)
            {
                var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                var events = new GatewayEvent[options.BatchSize];
                for (var i = 0; i < events.Length; i++)
                {
                    var fields = new Dictionary<string, double>(pipeline.Fields.Count);
                    foreach (var field in pipeline.Fields) fields[field] = random.Next(100);
                    events[i] = new GatewayEvent($"key-{random.Next(options.Keys)}", now - random.Next(200), fields);
                }

                var started = Stopwatch.GetTimestamp();
                try
                {
                    await client.PublishAsync(pipeline.Name, events, stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException || e is RpcException { StatusCode: StatusCode.Cancelled })
                {
                    break;
                }

                local.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                Interlocked.Add(ref published, events.Length);
            }

            lock (latencies) latencies.AddRange(local);
        })).ToArray();

        var last = 0L;
        var lastAt = TimeSpan.Zero;
        await using (LiveStatus.Start("gateway-load", () =>
        {
            var total = Interlocked.Read(ref published);
            var at = stopwatch.Elapsed;
            var rate = (total - last) / Math.Max(0.001, (at - lastAt).TotalSeconds);
            (last, lastAt) = (total, at);
            return [("published", $"{total:N0} ({rate:N0}/s)"), ("throttled attempts", $"{client.ThrottledAttempts:N0}")];
        }))
        {
            await Task.WhenAll(workers);
        }

        var seconds = stopwatch.Elapsed.TotalSeconds;
        latencies.Sort();
        double Percentile(double p) => latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)(p * latencies.Count))];
        Console.WriteLine($"gateway load: {published:N0} events in {seconds:F1} s = {published / seconds:N0} events/s; " +
            $"request latency p50 {Percentile(0.5):F1} ms, p99 {Percentile(0.99):F1} ms; {client.ThrottledAttempts:N0} throttled attempts");
        return 0;
    }
}
