using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.CommandLine;
using Orleans.Pipeline.Gateway;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Testing;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;

namespace Orleans.Pipeline.Tools;

/// <summary>Options of <c>bench</c>.</summary>
internal sealed record BenchOptions(int[] Keys, int Events, string[] Systems, string Output, bool Quick, int Partitions = PipelineDefinition.DefaultPartitions)
{
    /// <summary>The silo's <see cref="PipelineSiloOptions.ShedKeysAtMemoryPercent"/> (its default unless told; null: off).</summary>
    public double? ShedKeysAt { get; init; } = new PipelineSiloOptions().ShedKeysAtMemoryPercent;

    public static readonly string[] AllSystems = ["engine", "naive", "embedded", "gateway", "postgres"];

    public const string Usage =
        "usage: bench [--quick] [--keys 1000,10000,100000,1000000] [--events N per key count (2000000)] " +
        "[--systems engine,naive,embedded,gateway,postgres] [--partitions N (16)] [--shed-keys-at PERCENT (80; 0: off)] [--out DIR (bench-results)]";

    public static BenchOptions Parse(string[] args)
    {
        var options = new BenchOptions([1_000, 10_000, 100_000, 1_000_000], 2_000_000, AllSystems, "bench-results", false);
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--quick")
            {
                options = options with { Quick = true, Keys = [1_000, 10_000], Events = 200_000 };
                continue;
            }

            if (i + 1 >= args.Length) throw new ArgumentException($"option {name} needs a value");
            var value = args[++i];
            options = name switch
            {
                "--keys" => options with { Keys = value.Split(',').Select(v => int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var k) && k > 0 ? k : throw new ArgumentException($"--keys: '{v}' is not a positive whole number")).ToArray() },
                "--events" => options with { Events = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"--events: '{value}' is not a positive whole number") },
                "--systems" => options with { Systems = value.Split(',').Select(s => AllSystems.Contains(s) ? s : throw new ArgumentException($"--systems: unknown system '{s}' (known: {string.Join(", ", AllSystems)})")).ToArray() },
                "--out" => options with { Output = value },
                "--partitions" => options with { Partitions = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is >= 1 and <= 4096 ? p : throw new ArgumentException($"--partitions: '{value}' is not a whole number in [1, 4096]") },
                "--shed-keys-at" => options with { ShedKeysAt = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m is >= 0 and <= 100 ? (m == 0 ? null : m) : throw new ArgumentException($"--shed-keys-at: '{value}' is not a percentage in [0, 100]") },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        return options;
    }
}

/// <summary>
/// The end-to-end load benchmark: one seeded workload (tumbling 1 s; count, sum, min, max; uniform keys; 5% of events
/// out of order) at several key counts through several systems, in one invocation: the windowing engine alone (the
/// limit), a naive path (one stream item and one durable state write per event), embedded mode with the client in
/// process, embedded mode with the publisher in another process through the gRPC gateway, and PostgreSQL mode (exactly-once, on a throwaway server with fsync on). Prints a table, writes CSV, JSON
/// and an SVG chart, and checks that every system produced the same closed windows as the engine.
/// </summary>
internal static class Bench
{
    private const long WindowMs = 1_000;
    private const int WindowsSpanned = 8;

    private static readonly PipelineDefinition Pipeline = new(
        "bench",
        new WindowingDefinition(WindowSpec.Tumbling(WindowMs), [AggregationSpec.Count(), AggregationSpec.Sum("v"), AggregationSpec.Min("v"), AggregationSpec.Max("v")], MaxOutOfOrdernessMs: 200),
        ClosedWindowsKept: 16);

    public static async Task<int> RunAsync(BenchOptions options)
    {
        Directory.CreateDirectory(options.Output);
        var rows = new List<Row>();
        LocalPostgres? postgres = null;
        Console.WriteLine($"bench: {string.Join(", ", options.Systems)} at {string.Join(", ", options.Keys.Select(k => k.ToString("N0", CultureInfo.InvariantCulture)))} keys, {options.Events:N0} events each, {options.Partitions} partitions; {Environment.ProcessorCount} cores");
        try
        {
            if (options.Systems.Any(s => s != "engine"))
            {
                // Unmeasured: the first silo in a process pays for JIT compilation, which would count against whichever system ran first.
                Console.WriteLine("warming up (an unmeasured embedded run) …");
                await RunSiloAsync("embedded", 1_000, options.Quick ? 50_000 : 200_000, null, quick: true, latency: false, shedKeysAt: options.ShedKeysAt);
            }

            foreach (var keys in options.Keys)
            {
                var events = Math.Max(options.Events, keys * 2);
                string? reference = null;
                foreach (var system in options.Systems)
                {
                    var count = system == "naive" ? Math.Min(events, options.Quick ? 5_000 : 20_000) : events;
                    if (system == "gateway" && keys > 100_000) continue; // the request stream of a million keys: not yet measured
                    if (system == "postgres" && postgres is null)
                    {
                        Console.WriteLine("starting a throwaway PostgreSQL server (fsync on) …");
                        postgres = await LocalPostgres.StartAsync(durable: true);
                    }

                    Console.WriteLine($"-- {system}, {keys:N0} keys, {count:N0} events");
                    var row = system switch
                    {
                        "engine" => RunEngine(keys, count),
                        _ => await RunSiloAsync(system, keys, count, postgres, options.Quick, partitions: options.Partitions, shedKeysAt: options.ShedKeysAt),
                    };
                    if (system == "engine") reference = row.Digest;
                    row = row with { SameWindows = row.Digest is null || reference is null || system == "naive" ? null : row.Digest == reference };
                    rows.Add(row);
                    Console.WriteLine($"   {row.EventsPerSecond,12:N0} events/s  {row.EventsPerCoreSecond,12:N0} per core-second  peak {row.PeakWorkingSetMiB:N0} MiB  windows {(row.SameWindows is null ? "-" : row.SameWindows.Value ? "identical" : "DIFFERENT")}");
                }
            }
        }
        finally
        {
            if (postgres is not null) await postgres.DisposeAsync();
        }

        Print(rows);
        PrintWork(rows);
        Write(rows, options.Output);
        var different = rows.Where(r => r.SameWindows == false).ToList();
        if (different.Count > 0)
        {
            Console.Error.WriteLine($"error: windows differ from the engine's in {string.Join(", ", different.Select(r => $"{r.System} at {r.Keys} keys"))}");
            return 1;
        }

        return 0;
    }

    /// <summary>The seeded workload, generated before any clock starts: event i's key, time and value; time moves through <see cref="WindowsSpanned"/> windows, 5% of events up to 300 ms early.</summary>
    private sealed record Load(string[] Names, int[] Keys, long[] Times, double[] Values);

    private static Load Workload(int keys, int events)
    {
        var random = new Random(42);
        const long start = 1_767_225_600_000; // 2026-01-01
        var load = new Load(Enumerable.Range(0, keys).Select(k => $"key-{k}").ToArray(), new int[events], new long[events], new double[events]);
        for (var i = 0; i < events; i++)
        {
            var time = start + (long)i * WindowsSpanned * WindowMs / events;
            if (random.Next(100) < 5) time -= random.Next(300);
            load.Keys[i] = random.Next(keys);
            load.Times[i] = time;
            load.Values[i] = random.Next(1_000);
        }

        return load;
    }

    private static Row RunEngine(int keys, int events)
    {
        var load = Workload(keys, events);
        var engines = new Dictionary<string, WindowEngine>(StringComparer.Ordinal);
        var closed = new Dictionary<string, Dictionary<(long, long), WindowResult>>(StringComparer.Ordinal);
        var output = new List<WindowResult>();
        var row = new double[1];
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < events; i++)
        {
            var key = load.Names[load.Keys[i]];
            if (!engines.TryGetValue(key, out var engine)) engines[key] = engine = new WindowEngine(Pipeline.Windowing);
            row[0] = load.Values[i];
            output.Clear();
            engine.Process(load.Times[i], row, 0, output);
            if (output.Count > 0) Fold(closed, key, output);
        }

        var elapsed = clock.Elapsed;
        var cpuUsed = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        return new Row("engine", keys, events, events / elapsed.TotalSeconds, events / Math.Max(cpuUsed.TotalSeconds, 1e-3), PeakMiB(), Digest(closed), null);
    }

    /// <summary>Folds emissions the way a key grain keeps its closed windows: the latest final or update per window.</summary>
    private static void Fold(Dictionary<string, Dictionary<(long, long), WindowResult>> closed, string key, IEnumerable<WindowResult> results)
    {
        if (!closed.TryGetValue(key, out var windows)) closed[key] = windows = [];
        foreach (var result in results)
        {
            if (result.Kind is ResultKind.Partial) continue;
            windows.Remove((result.Start, result.End));
            if (result.Kind is ResultKind.Final or ResultKind.Update) windows[(result.Start, result.End)] = result;
        }
    }

    private static string Digest(Dictionary<string, Dictionary<(long, long), WindowResult>> closed)
    {
        var lines = closed.SelectMany(k => k.Value.Values.Select(r => string.Create(CultureInfo.InvariantCulture,
                $"{k.Key}|{r.Start}|{r.End}|{r.Revision}|{r.EventCount}|{string.Join(',', r.Values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}")))
            .Order(StringComparer.Ordinal);
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', lines))))[..16];
    }

    private static async Task<Row> RunSiloAsync(string system, int keys, int events, LocalPostgres? postgres, bool quick, bool latency = true, int partitions = PipelineDefinition.DefaultPartitions, double? shedKeysAt = null)
    {
        var cluster = new PipelineClusterOptions { ClusterId = $"bench-{Guid.NewGuid():N}", ServiceId = "bench" };
        var database = Path.Combine(Path.GetTempPath(), $"orleans-pipeline-bench-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        if (system == "postgres")
        {
            cluster.Mode = PipelineMode.PostgreSql;
            cluster.ConnectionString = await postgres!.CreateDatabaseAsync($"bench_{Guid.NewGuid():N}");
        }

        var gateway = new GatewayOptions
        {
            Url = $"http://127.0.0.1:{FreePorts.Next()}",
            EventsPerSecondPerCaller = 50_000_000,
            BurstPerCaller = 50_000_000,
            MaxInFlightEvents = 4_000_000,
        };
        IHostApplicationBuilder builder = system == "gateway"
            ? WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] })
            : Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Error);
        if (builder is WebApplicationBuilder web)
        {
            web.WebHost.ConfigureKestrel(kestrel => kestrel.ListenGateway(gateway));
            if (cluster.Mode == PipelineMode.PostgreSql) web.Services.AddPostgresGatewayStores(cluster.ConnectionString!, gateway.RequestIdRetention);
            web.Services.AddPipelineGateway(gateway);
        }

        builder.UseOrleans(silo => silo
            .UsePipelineCluster(cluster, FreePorts.Next(), FreePorts.Next())
            .AddPipelineSilo(o =>
            {
                o.Pipelines.Add(Pipeline with { Partitions = partitions });
                o.Cluster = cluster;
                o.DatabasePath = database;
                if (system == "naive") o.StateWriteInterval = TimeSpan.Zero;
                o.ShedKeysAtMemoryPercent = shedKeysAt;
            }));
        IHost host;
        if (builder is WebApplicationBuilder webBuilder)
        {
            var app = webBuilder.Build();
            app.MapPipelineGateway();
            host = app;
        }
        else
        {
            host = ((HostApplicationBuilder)builder).Build();
        }

        using var disposeHost = host;
        await host.StartAsync();
        var before = Environment.WorkingSet;
        var peak = new PeakSampler();
        try
        {
            var clusterClient = host.Services.GetRequiredService<IClusterClient>();
            await using var client = new PipelineClient(clusterClient, system == "naive"
                ? new PipelineClientOptions { MaxBatchSize = 1, MaxUnappliedBatches = 64, Linger = TimeSpan.Zero }
                : new PipelineClientOptions());
            var load = Workload(keys, events);
            // A subscriber to every result on the same machine: in process through the SDK, or over gRPC through the gateway.
            await using var subscriber = system == "naive" ? null : await SubscriberProbe.StartAsync(client, system == "gateway" ? gateway.Url : null);
            // Cluster mode counts the database server's CPU too: it does the durable part of the work.
            var cpu = Process.GetCurrentProcess().TotalProcessorTime + (system == "postgres" ? postgres!.CpuTime() : TimeSpan.Zero);
            using var work = WorkMeter.Start();
            var clock = Stopwatch.StartNew();
            var published = 0;
            var publisherCpu = TimeSpan.Zero;
            if (system == "gateway")
            {
                // The publisher is another process: the same workload, through PipelineGatewayClient over gRPC.
                publisherCpu = await PublishFromAnotherProcessAsync(gateway.Url, keys, events);
                var gatewayClient = host.Services.GetRequiredService<PipelineClient>();
                await gatewayClient.WaitUntilAppliedAsync();
                events = (int)Math.Min(events, gatewayClient.PublishedEvents);
                published = events;
            }

            await using (LiveStatus.Start($"   {system}, {keys:N0} keys", () =>
                [("published", $"{Volatile.Read(ref published):N0} of {events:N0} ({Volatile.Read(ref published) / clock.Elapsed.TotalSeconds:N0}/s)"),
                 ("backpressure waits", $"{client.BackpressureWaits:N0}")]))
            {
                for (var i = published; i < events; i++)
                {
                    await client.PublishAsync(Pipeline.Name, new PipelineEvent(load.Names[load.Keys[i]], load.Times[i], new Dictionary<string, double>(1) { ["v"] = load.Values[i] }));
                    published++;
                }
            }

            await client.WaitUntilAppliedAsync();
            var elapsed = clock.Elapsed;
            var cpuUsed = Process.GetCurrentProcess().TotalProcessorTime + (system == "postgres" ? postgres!.CpuTime() : TimeSpan.Zero) - cpu + publisherCpu;
            var workingSet = peak.Stop();
            var done = work.Stop(events);
            var followed = subscriber is null ? null : await subscriber.CatchUpAsync(client);
            string? digest = null;
            if (keys <= 100_000 && system != "naive")
            {
                var closed = new Dictionary<string, Dictionary<(long, long), WindowResult>>(StringComparer.Ordinal);
                var names = Enumerable.Range(0, keys).Select(k => $"key-{k}").ToArray();
                foreach (var chunk in names.Chunk(2_000))
                {
                    var windows = await Task.WhenAll(chunk.Select(k => client.QueryAsync(Pipeline.Name, k)));
                    for (var i = 0; i < chunk.Length; i++)
                        if (windows[i].Closed.Length > 0) Fold(closed, chunk[i], windows[i].Closed);
                }

                digest = Digest(closed);
            }

            Latency? measured = null;
            if (latency && system is "embedded" or "postgres" && keys <= 100_000)
                measured = await MeasureLatencyAsync(host, client, keys, events / elapsed.TotalSeconds / 2, TimeSpan.FromSeconds(quick ? 3 : 8));

            // What an idle key costs: its stored row once its grain has deactivated (which writes its whole state).
            long storedPerKey = 0;
            if (system is "embedded" && host.Services.GetService<SqliteKeyStateStore>() is { } sqlite)
            {
                try
                {
                    await clusterClient.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
                    await sqlite.FlushAsync();
                    storedPerKey = await StoredBytesPerKeyAsync(database, keys);
                }
                catch (TimeoutException)
                {
                    // A million deactivations can take longer than a grain call may: the throughput stands, this column stays empty.
                    Console.WriteLine("   (stored bytes/key not measured: deactivating every key took longer than a grain call may)");
                }
            }

            return new Row(system, keys, events, events / elapsed.TotalSeconds, events / Math.Max(cpuUsed.TotalSeconds, 1e-3),
                workingSet / (1024 * 1024), digest, null, (workingSet - before) / Math.Max(keys, 1), measured, storedPerKey, followed, done);
        }
        finally
        {
            await host.StopAsync();
            File.Delete(database);
        }
    }

    /// <summary>
    /// Latency at half the sustainable rate: events stamped with the wall clock (5% up to 300 ms early) published at
    /// <paramref name="rate"/> for <paramref name="duration"/>; the silo records send-to-apply per slice and
    /// window-end-to-final-result per window. A key's window closes when that key's watermark passes its end, so with
    /// few events per key per second the second figure grows with the key count: that is event-time semantics.
    /// </summary>
    private static async Task<Latency> MeasureLatencyAsync(IHost host, PipelineClient client, int keys, double rate, TimeSpan duration)
    {
        var recorder = host.Services.GetRequiredService<Orleans.Pipeline.Grains.PipelineLatencies>();
        recorder.Reset();
        var random = new Random(7);
        var clock = Stopwatch.StartNew();
        long sent = 0;
        Console.WriteLine($"   latency at {rate:N0} events/s (half the measured rate) for {duration.TotalSeconds:N0} s …");
        while (clock.Elapsed < duration)
        {
            var due = (long)(clock.Elapsed.TotalSeconds * rate);
            for (; sent < due; sent++)
            {
                var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                var time = random.Next(100) < 5 ? now - random.Next(300) : now;
                await client.PublishAsync(Pipeline.Name, new PipelineEvent($"key-{random.Next(keys)}", time, new Dictionary<string, double>(1) { ["v"] = random.Next(1_000) }));
            }

            await Task.Delay(1);
        }

        await client.WaitUntilAppliedAsync();
        var (applied, results) = recorder.Snapshot();
        return new Latency(rate, applied.P50, applied.P99, results.P50, results.P99);
    }

    /// <summary>What the subscriber got: key result batches received of those emitted, missed (told), and how long after the last event was applied it had them all.</summary>
    private sealed record Followed(long Received, long Emitted, long Missed, double CatchUpMs);

    /// <summary>A subscriber that counts every key result batch it receives, and the positions it was told it missed.</summary>
    private sealed class SubscriberProbe : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private IAsyncDisposable? _subscription;
        private Task? _reader;
        private long _received;
        private long _missed;

        public static async Task<SubscriberProbe> StartAsync(PipelineClient client, string? gatewayUrl)
        {
            var probe = new SubscriberProbe();
            if (gatewayUrl is null)
            {
                probe._subscription = await client.SubscribeAsync(Pipeline.Name, _ =>
                {
                    Interlocked.Increment(ref probe._received);
                    return Task.CompletedTask;
                }, missed =>
                {
                    Interlocked.Add(ref probe._missed, missed.Count);
                    return Task.CompletedTask;
                });
            }
            else
            {
                var gateway = new PipelineGatewayClient(Grpc.Net.Client.GrpcChannel.ForAddress(gatewayUrl));
                probe._reader = Task.Run(async () =>
                {
                    long last = -1;
                    try
                    {
                        await foreach (var batch in gateway.SubscribeAsync(Pipeline.Name, cancellationToken: probe._stop.Token))
                        {
                            if (last >= 0 && batch.ChangeId > last + 1) Interlocked.Add(ref probe._missed, batch.ChangeId - last - 1);
                            last = batch.ChangeId;
                            Interlocked.Increment(ref probe._received);
                        }
                    }
                    catch (Exception) when (probe._stop.IsCancellationRequested)
                    {
                    }
                    finally
                    {
                        gateway.Dispose();
                    }
                });
            }

            // Let the subscription register before anything is published.
            await Task.Delay(TimeSpan.FromMilliseconds(300));
            return probe;
        }

        /// <summary>Waits (up to 60 s) until the subscriber has every batch the silo's log numbered.</summary>
        public async Task<Followed> CatchUpAsync(PipelineClient client)
        {
            var clock = Stopwatch.StartNew();
            long emitted;
            do
            {
                await Task.Delay(Orleans.Pipeline.Grains.LiveResults.Interval);
                emitted = (await client.ReadRecentResultsAsync(Pipeline.Name, long.MaxValue - 1, 1, TimeSpan.Zero)).Latest;
            }
            while (Interlocked.Read(ref _received) + Interlocked.Read(ref _missed) < emitted && clock.Elapsed < TimeSpan.FromSeconds(60));
            return new Followed(Interlocked.Read(ref _received), emitted, Interlocked.Read(ref _missed), clock.Elapsed.TotalMilliseconds);
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            if (_subscription is not null) await _subscription.DisposeAsync();
            if (_reader is not null) await _reader;
        }
    }

    /// <summary>What a run did per 1,000 events, and the runtime's garbage collection over the run (collections in all, share of wall time paused).</summary>
    internal sealed record Work(double KeyCalls, double Activations, double Results, double StateRows, double AllocatedKiB, int Gen0, int Gen1, int Gen2, double PausedShare, long KeysShed);

    /// <summary>
    /// Counts, from the pipeline's own instruments, the key grains' steps (one per slice applied), activations,
    /// results and stored state rows while a run lasts; and the process's allocations and collections.
    /// </summary>
    private sealed class WorkMeter : IDisposable
    {
        private readonly System.Diagnostics.Metrics.MeterListener _listener = new();
        private readonly long _allocated = GC.GetTotalAllocatedBytes();
        private readonly int[] _collections = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        private readonly TimeSpan _paused = GC.GetTotalPauseDuration();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _calls, _activations, _results, _rows, _shed;

        public static WorkMeter Start()
        {
            var meter = new WorkMeter();
            meter._listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument == PipelineMeter.ApplyLatency || instrument == PipelineMeter.ActiveKeys ||
                    instrument == PipelineMeter.WindowsEmitted || instrument == PipelineMeter.StateWriteGroupSize || instrument == PipelineMeter.KeysShed)
                    listener.EnableMeasurementEvents(instrument);
            };
            meter._listener.SetMeasurementEventCallback<double>((instrument, _, _, _) =>
            {
                if (instrument == PipelineMeter.ApplyLatency) Interlocked.Increment(ref meter._calls);
            });
            meter._listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
            {
                if (instrument == PipelineMeter.ActiveKeys && value > 0) Interlocked.Add(ref meter._activations, value);
                else if (instrument == PipelineMeter.WindowsEmitted) Interlocked.Add(ref meter._results, value);
                else if (instrument == PipelineMeter.StateWriteGroupSize) Interlocked.Add(ref meter._rows, value);
                else if (instrument == PipelineMeter.KeysShed) Interlocked.Add(ref meter._shed, value);
            });
            meter._listener.Start();
            return meter;
        }

        public Work Stop(int events)
        {
            _listener.Dispose();
            double per = 1_000.0 / Math.Max(events, 1);
            return new Work(_calls * per, _activations * per, _results * per, _rows * per,
                (GC.GetTotalAllocatedBytes() - _allocated) / 1024.0 * per,
                GC.CollectionCount(0) - _collections[0], GC.CollectionCount(1) - _collections[1], GC.CollectionCount(2) - _collections[2],
                (GC.GetTotalPauseDuration() - _paused) / _clock.Elapsed, Interlocked.Read(ref _shed));
        }

        public void Dispose() => _listener.Dispose();
    }

    private sealed record Latency(double Rate, double AppliedP50, double AppliedP99, double ResultP50, double ResultP99);

    /// <summary>Lanes of the gateway publisher (one request in flight each): a key always travels in one lane, so its events keep their order.</summary>
    private const int Lanes = 64;

    private static async Task<TimeSpan> PublishFromAnotherProcessAsync(string url, int keys, int events)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Executables.Tools);
        foreach (var argument in new[] { "bench-publish", url, keys.ToString(CultureInfo.InvariantCulture), events.ToString(CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(argument);
        using var publisher = Process.Start(start) ?? throw new InvalidOperationException("could not start the gateway publisher");
        var output = publisher.StandardOutput.ReadToEndAsync();
        var errors = publisher.StandardError.ReadToEndAsync();
        await publisher.WaitForExitAsync();
        var text = await output;
        if (publisher.ExitCode != 0) throw new InvalidOperationException($"the gateway publisher failed ({publisher.ExitCode}): {text}{await errors}");
        var cpu = text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("cpu-ms=", StringComparison.Ordinal));
        return cpu is null ? TimeSpan.Zero : TimeSpan.FromMilliseconds(double.Parse(cpu[7..], CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// <c>bench-publish URL KEYS EVENTS</c>: the gateway publisher's process. Publishes the seeded workload in requests
    /// of up to 1,000 events, one lane per key group, each lane one request at a time; prints its CPU time.
    /// </summary>
    public static async Task<int> PublishThroughGatewayAsync(string[] args)
    {
        if (args.Length != 3 || !Uri.TryCreate(args[0], UriKind.Absolute, out var url) ||
            !int.TryParse(args[1], CultureInfo.InvariantCulture, out var keys) || !int.TryParse(args[2], CultureInfo.InvariantCulture, out var events))
        {
            Console.Error.WriteLine("usage: bench-publish URL KEYS EVENTS (started by bench)");
            return 2;
        }

        var load = Workload(keys, events);
        using var client = new PipelineGatewayClient(url);
        var lanes = Enumerable.Range(0, Lanes).Select(_ => new List<int>()).ToArray();
        for (var i = 0; i < events; i++) lanes[load.Keys[i] % Lanes].Add(i);
        await Task.WhenAll(lanes.Select(async lane =>
        {
            foreach (var chunk in lane.Chunk(1_000))
            {
                await client.PublishAsync(Pipeline.Name, chunk.Select(i =>
                    new GatewayEvent(load.Names[load.Keys[i]], load.Times[i], new Dictionary<string, double>(1) { ["v"] = load.Values[i] })));
            }
        }));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cpu-ms={Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds:F0}"));
        return 0;
    }

    private static async Task<long> StoredBytesPerKeyAsync(string database, int keys)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={database}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT coalesce(sum(length(payload) + length(key) + length(pipeline) + 8), 0) FROM pipeline_key_state";
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture) / Math.Max(keys, 1);
    }

    private static long PeakMiB() => Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024);

    /// <summary>Samples the working set while a run lasts.</summary>
    private sealed class PeakSampler
    {
        private readonly Timer _timer;
        private long _peak = Environment.WorkingSet;

        public PeakSampler() => _timer = new Timer(_ => Interlocked.Exchange(ref _peak, Math.Max(Interlocked.Read(ref _peak), Environment.WorkingSet)), null, 0, 200);

        public long Stop()
        {
            _timer.Dispose();
            return Math.Max(_peak, Environment.WorkingSet);
        }
    }

    private sealed record Row(string System, int Keys, int Events, double EventsPerSecond, double EventsPerCoreSecond, long PeakWorkingSetMiB, string? Digest, bool? SameWindows, long BytesPerKey = 0, Latency? Latency = null, long StoredBytesPerKey = 0, Followed? Subscriber = null, Work? Work = null);

    private static void Print(List<Row> rows)
    {
        Console.WriteLine();
        Console.WriteLine($"| system | keys | events | events/s | events/s per core | vs naive | peak MiB | bytes/key | windows | publish→applied p50/p99 ms | window end→result p50/p99 ms | stored bytes/key | subscriber got / emitted (missed) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
        foreach (var row in rows)
        {
            var naive = rows.FirstOrDefault(r => r.System == "naive" && r.Keys == row.Keys);
            var ratio = naive is null || row.System == "naive" ? "" : $"{row.EventsPerSecond / naive.EventsPerSecond:N1}×";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {row.System} | {row.Keys:N0} | {row.Events:N0} | {row.EventsPerSecond:N0} | {row.EventsPerCoreSecond:N0} | {ratio} | {row.PeakWorkingSetMiB:N0} | {(row.BytesPerKey > 0 ? row.BytesPerKey.ToString("N0", CultureInfo.InvariantCulture) : "")} | {(row.SameWindows is null ? "-" : row.SameWindows.Value ? "identical" : "DIFFERENT")} | {(row.Latency is { } l ? $"{l.AppliedP50:N0} / {l.AppliedP99:N0}" : "")} | {(row.Latency is { } m ? $"{m.ResultP50:N0} / {m.ResultP99:N0}" : "")} | {(row.StoredBytesPerKey > 0 ? row.StoredBytesPerKey.ToString("N0", CultureInfo.InvariantCulture) : "")} | {(row.Subscriber is { } f ? $"{f.Received:N0} / {f.Emitted:N0} ({f.Missed:N0})" : "")} |"));
        }
    }

    /// <summary>Where the work went: per 1,000 events, what the silo did for them, and what the runtime spent.</summary>
    private static void PrintWork(List<Row> rows)
    {
        if (!rows.Any(r => r.Work is not null)) return;
        Console.WriteLine();
        Console.WriteLine("Per 1,000 events (silo systems):");
        Console.WriteLine("| system | keys | key calls | key activations | window results | state rows written | allocated KiB | GC collections (gen0/1/2) | time paused in GC | keys shed for memory (whole run) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in rows.Where(r => r.Work is not null))
        {
            var w = row.Work!;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {row.System} | {row.Keys:N0} | {w.KeyCalls:N1} | {w.Activations:N1} | {w.Results:N1} | {w.StateRows:N1} | {w.AllocatedKiB:N0} | {w.Gen0} / {w.Gen1} / {w.Gen2} | {w.PausedShare:P0} | {w.KeysShed:N0} |"));
        }
    }

    private static void Write(List<Row> rows, string directory)
    {
        var csv = new StringBuilder("system,keys,events,events_per_second,events_per_core_second,peak_working_set_mib,bytes_per_key,same_windows,latency_rate,applied_p50_ms,applied_p99_ms,result_p50_ms,result_p99_ms,stored_bytes_per_key,subscriber_received,results_emitted,subscriber_missed,key_calls_per_1000,activations_per_1000,results_per_1000,state_rows_per_1000,allocated_kib_per_1000,gc_paused_share,keys_shed\n");
        foreach (var r in rows)
            csv.Append(CultureInfo.InvariantCulture, $"{r.System},{r.Keys},{r.Events},{r.EventsPerSecond:F0},{r.EventsPerCoreSecond:F0},{r.PeakWorkingSetMiB},{r.BytesPerKey},{(r.SameWindows is null ? "" : r.SameWindows.Value ? "true" : "false")},{r.Latency?.Rate:F0},{r.Latency?.AppliedP50},{r.Latency?.AppliedP99},{r.Latency?.ResultP50},{r.Latency?.ResultP99},{r.StoredBytesPerKey},{r.Subscriber?.Received},{r.Subscriber?.Emitted},{r.Subscriber?.Missed},{r.Work?.KeyCalls:F2},{r.Work?.Activations:F2},{r.Work?.Results:F2},{r.Work?.StateRows:F2},{r.Work?.AllocatedKiB:F0},{r.Work?.PausedShare:F3},{r.Work?.KeysShed}\n");
        File.WriteAllText(Path.Combine(directory, "bench.csv"), csv.ToString());
        File.WriteAllText(Path.Combine(directory, "bench.json"), JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllText(Path.Combine(directory, "bench.svg"), Chart(rows));
        Console.WriteLine($"wrote {Path.Combine(directory, "bench.csv")}, bench.json and bench.svg (throughput against keys, one line per system)");
    }

    /// <summary>Events/s against key count, both on log scales, one line per system.</summary>
    private static string Chart(List<Row> rows)
    {
        const int width = 720, height = 440, left = 80, right = 150, top = 30, bottom = 50;
        string[] colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];
        var keys = rows.Select(r => (double)r.Keys).ToArray();
        var rates = rows.Select(r => Math.Max(r.EventsPerSecond, 1)).ToArray();
        double lx0 = Math.Log10(keys.Min()), lx1 = Math.Max(Math.Log10(keys.Max()), lx0 + 1);
        double ly0 = Math.Floor(Math.Log10(rates.Min())), ly1 = Math.Ceiling(Math.Log10(rates.Max()));
        if (ly1 <= ly0) ly1 = ly0 + 1;
        double X(double k) => left + (Math.Log10(k) - lx0) / (lx1 - lx0) * (width - left - right);
        double Y(double r) => height - bottom - (Math.Log10(r) - ly0) / (ly1 - ly0) * (height - top - bottom);
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.Append(CultureInfo.InvariantCulture, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/><text x=\"{left}\" y=\"18\" font-size=\"14\">events/s against distinct keys (log-log), {Environment.ProcessorCount} cores</text>");
        for (var e = ly0; e <= ly1; e++)
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" x2=\"{width - right}\" y1=\"{Y(Math.Pow(10, e)):F1}\" y2=\"{Y(Math.Pow(10, e)):F1}\" stroke=\"#ddd\"/><text x=\"{left - 6}\" y=\"{Y(Math.Pow(10, e)) + 4:F1}\" text-anchor=\"end\">1e{e}</text>");
        foreach (var k in keys.Distinct())
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(k):F1}\" y=\"{height - bottom + 18}\" text-anchor=\"middle\">{k:N0}</text>");
        var systems = rows.Select(r => r.System).Distinct().ToList();
        for (var s = 0; s < systems.Count; s++)
        {
            var points = rows.Where(r => r.System == systems[s]).OrderBy(r => r.Keys).Select(r => $"{X(r.Keys).ToString("F1", CultureInfo.InvariantCulture)},{Y(Math.Max(r.EventsPerSecond, 1)).ToString("F1", CultureInfo.InvariantCulture)}").ToList();
            var colour = colours[s % colours.Length];
            svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{string.Join(' ', points)}\"/>");
            foreach (var p in points) svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{p.Split(',')[0]}\" cy=\"{p.Split(',')[1]}\" r=\"3\" fill=\"{colour}\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{width - right + 10}\" y=\"{top + 20 + s * 18}\" fill=\"{colour}\">{systems[s]}</text>");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{(left + width - right) / 2}\" y=\"{height - 10}\" text-anchor=\"middle\">distinct keys</text></svg>");
        return svg.ToString();
    }
}
