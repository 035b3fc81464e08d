using System.Diagnostics;
using System.Globalization;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.CommandLine;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Testing;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Aggregation;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Tools;

internal sealed record ChaosOptions(double Minutes, int Seed, int Keys, int Silos, int Rate, bool BreakDedupe = false)
{
    public const string Usage = "usage: chaos [--minutes N (2)] [--seed S (1)] [--keys K per producer (2000)] [--silos N (3)] [--rate events/s per producer (2000)] [--break-dedupe]";

    public static ChaosOptions Parse(string[] args)
    {
        var options = new ChaosOptions(2, 1, 2_000, 3, 2_000);
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--break-dedupe")
            {
                // Shows that the check can fail: the restarted producer sends its last acknowledged request again
                // under a new request id, as a producer without request ids would.
                options = options with { BreakDedupe = true };
                continue;
            }

            if (i + 1 >= args.Length) throw new ArgumentException($"option {name} needs a value");
            var value = args[++i];
            options = name switch
            {
                "--minutes" => options with { Minutes = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m is > 0 and <= 24 * 60 ? m : throw new ArgumentException($"--minutes: '{value}' is not a number of minutes in (0, 1440]") },
                "--seed" => options with { Seed = Whole(name, value) },
                "--keys" => options with { Keys = Whole(name, value) },
                "--silos" => options with { Silos = Whole(name, value) is var n and >= 2 and <= 8 ? n : throw new ArgumentException("--silos must be in [2, 8]") },
                "--rate" => options with { Rate = Whole(name, value) },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        return options;
    }

    private static int Whole(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"{name}: '{value}' is not a positive whole number");
}

/// <summary>
/// Runs the cluster as separate processes on this machine (a throwaway PostgreSQL, several silos, a producer
/// publishing through the gateway with request ids, and this process publishing through the .NET SDK), and hurts it
/// while it works: silos killed with SIGKILL and restarted, one stopped gracefully and restarted, one more added, the
/// producer killed and restarted (it resumes from its last acknowledged request), PostgreSQL stopped for a few
/// seconds. At the end it compares the results table with the windowing engine run over the same seeded events:
/// every window and aggregate must be identical.
/// </summary>
internal static class Chaos
{
    private const long StartMs = 1_700_000_000_000;
    private const int ChunkSize = 250;

    /// <summary>Events per request of the gateway producer (it sends one request at a time, so a request must carry enough).</summary>
    private const int RequestSize = 1_000;

    /// <summary>
    /// The pipeline under test. Its allowed lateness covers what a fault delays: items leased by a silo that dies come
    /// back after the queue's visibility timeout (5 s here), and a producer's retry through another gateway runs
    /// under that gateway's producer id, with no order against the first; event time runs at about 6 s per second.
    /// </summary>
    public static readonly PipelineDefinition Pipeline = new("chaos",
        new WindowingDefinition(WindowSpec.Tumbling(1_000), [AggregationSpec.Count(), AggregationSpec.Sum("v"), AggregationSpec.Min("v"), AggregationSpec.Max("v")],
            MaxOutOfOrdernessMs: 200, AllowedLatenessMs: 120_000),
        Partitions: 8);

    internal sealed record Event(string Key, long Time, double Value);

    /// <summary>The seeded events of one producer, in the order it publishes them: event time advances 4 ms per event, 5% up to 300 ms early.</summary>
    internal static List<Event> Workload(string prefix, int seed, int keys, int count)
    {
        var random = new Random(seed);
        var events = new List<Event>(count);
        for (var i = 0; i < count; i++)
        {
            var early = random.NextDouble() < 0.05 ? random.Next(300) : 0;
            events.Add(new Event($"{prefix}-{random.Next(keys)}", StartMs + i * 4L - early, random.Next(1_000)));
        }

        return events;
    }

    public static async Task<int> RunAsync(ChaosOptions options)
    {
        var duration = TimeSpan.FromMinutes(options.Minutes);
        var perProducer = (int)Math.Max(ChunkSize, options.Rate * duration.TotalSeconds);
        if (options.BreakDedupe) Console.WriteLine("chaos: --break-dedupe: the restarted producer sends its last acknowledged request again under a new id; mismatches are expected");
        Console.WriteLine($"chaos: {options.Silos} silos, 2 producers × {perProducer:N0} events over {options.Keys:N0} keys each, {duration.TotalSeconds:0} s of faults, seed {options.Seed}");
        Console.WriteLine("starting a throwaway PostgreSQL …");
        await using var postgres = await LocalPostgres.StartAsync();
        var database = await postgres.CreateDatabaseAsync("chaos");
        await PostgresSchema.MigrateAsync(database);
        // This process's own queries: no pooled connection outlives PostgreSQL being stopped.
        var direct = new NpgsqlConnectionStringBuilder(database) { Pooling = false }.ConnectionString;
        var work = Directory.CreateTempSubdirectory("orleans-pipeline-chaos-").FullName;
        var cluster = new PipelineClusterOptions { Mode = PipelineMode.PostgreSql, ConnectionString = database, ClusterId = "chaos", ServiceId = "chaos", StreamQueues = 4 };

        var silos = new List<ChildProcess>();
        var log = new List<string>();
        var recoveries = new List<double>();
        var kills = 0;
        try
        {
            for (var i = 0; i < options.Silos; i++) silos.Add(ChaosSilo(database, i));
            foreach (var silo in silos) silo.Start();
            await Task.WhenAll(silos.Select(s => s.WaitForAsync("silo started", TimeSpan.FromSeconds(90))));
            Console.WriteLine($"{silos.Count} silos up");

            var clientBuilder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            clientBuilder.UseOrleansClient(client => client.UsePipelineCluster(cluster));
            using var clientHost = clientBuilder.Build();
            await clientHost.StartAsync();
            var orleans = clientHost.Services.GetRequiredService<IClusterClient>();
            await using var client = new PipelineClient(orleans);

            var sdkEvents = Workload("sdk", options.Seed, options.Keys, perProducer);
            var gatewayEvents = Workload("gw", options.Seed + 1, options.Keys, perProducer);
            var progress = Path.Combine(work, "producer.progress");
            var urls = string.Join(',', silos.Select(s => s.Environment["Pipeline__Gateway__Url"]));
            ChildProcess Producer() => new(Executables.Tools, ["chaos-produce", urls, (options.Seed + 1).ToString(CultureInfo.InvariantCulture), options.Keys.ToString(CultureInfo.InvariantCulture),
                perProducer.ToString(CultureInfo.InvariantCulture), options.Rate.ToString(CultureInfo.InvariantCulture), progress, options.BreakDedupe ? "break" : "keep"], new Dictionary<string, string>());
            var producer = Producer();
            producer.Start();

            var clock = Stopwatch.StartNew();
            var sdkPublished = 0;
            var rounds = 0;
            await using var status = LiveStatus.Start("chaos", () =>
            [
                ("SDK producer", $"{Volatile.Read(ref sdkPublished):N0} of {sdkEvents.Count:N0} events"),
                ("gateway producer", $"{ReadProgress(progress)} requests acknowledged"),
                ("silos", $"{silos.Count(s => !s.HasExited)} running"),
                ("faults", $"{Volatile.Read(ref rounds)} ({kills} SIGKILL)"),
            ]);
            var sdk = Task.Run(async () =>
            {
                for (var i = 0; i < sdkEvents.Count; i += ChunkSize)
                {
                    foreach (var e in sdkEvents.Skip(i).Take(ChunkSize))
                    {
                        await client.PublishAsync(Pipeline.Name, new PipelineEvent(e.Key, e.Time, new Dictionary<string, double> { ["v"] = e.Value }));
                        Interlocked.Increment(ref sdkPublished);
                    }

                    var due = TimeSpan.FromSeconds((i + ChunkSize) / (double)options.Rate);
                    if (due > clock.Elapsed) await Task.Delay(due - clock.Elapsed);
                }

                await client.FlushAsync();
            });

            // The faults, spread over the run, in a seeded order.
            var random = new Random(options.Seed);
            // With --break-dedupe only the producer's restart matters (it resends under a new id): the other faults are left out.
            string[] plan = options.BreakDedupe ? ["producer"] : ["kill", "stop", "producer", "kill", "postgres", "add", "kill"];
            var planned = Math.Max(plan.Length, (int)(duration.TotalSeconds / 10));
            var step = duration / (planned + 1);
            // The planned faults always happen; random ones only within the duration (a restart takes a few seconds of its own).
            for (var round = 0; round < planned && (round < plan.Length || clock.Elapsed < duration); round++)
            {
                Volatile.Write(ref rounds, round + 1);
                await Task.Delay(step);
                var action = round < plan.Length ? plan[round] : random.Next(10) switch { < 7 => "kill", < 8 => "stop", _ => "producer" };
                if (action == "add" && silos.Count >= 8) action = "kill";
                var at = clock.Elapsed.TotalSeconds;
                switch (action)
                {
                    case "kill":
                    case "stop":
                    {
                        var victim = silos[random.Next(silos.Count)];
                        var moved = await KeysOnAsync(orleans, victim, sdkEvents.Concat(gatewayEvents).Select(e => e.Key).Distinct().Take(400));
                        if (action == "kill") victim.Kill();
                        else await victim.StopGracefullyAsync(TimeSpan.FromSeconds(40));
                        var killedAt = await DatabaseNowAsync(direct);
                        kills += action == "kill" ? 1 : 0;
                        log.Add($"{at,6:F1} s  {(action == "kill" ? "SIGKILL" : "SIGTERM")} silo {victim.Name} ({moved.Count} sampled keys on it)");
                        status.Log(log[^1]);
                        var recovery = moved.Count > 0 ? RecoveryAsync(direct, moved, killedAt) : null;
                        await Task.Delay(TimeSpan.FromSeconds(2));
                        victim.Start();
                        await victim.WaitForAsync("silo started", TimeSpan.FromSeconds(90));
                        if (recovery is not null)
                        {
                            var seconds = await recovery;
                            if (seconds is not null) recoveries.Add(seconds.Value);
                            log.Add(seconds is null
                                ? $"{clock.Elapsed.TotalSeconds,6:F1} s  no result of its keys within 30 s (their producers may be done)"
                                : $"{clock.Elapsed.TotalSeconds,6:F1} s  its keys' first result {seconds:F1} s after the {(action == "kill" ? "kill" : "stop")}");
                            status.Log(log[^1]);
                        }

                        break;
                    }

                    case "producer":
                        producer.Kill();
                        log.Add($"{at,6:F1} s  SIGKILL the gateway producer (acknowledged: {ReadProgress(progress)} requests); restarted");
                        status.Log(log[^1]);
                        producer = Producer();
                        producer.Start();
                        break;
                    case "postgres":
                        await postgres.PauseAsync();
                        log.Add($"{at,6:F1} s  PostgreSQL stopped for 3 s");
                        status.Log(log[^1]);
                        await Task.Delay(TimeSpan.FromSeconds(3));
                        await postgres.ResumeAsync();
                        break;
                    case "add":
                        var added = ChaosSilo(database, silos.Count);
                        silos.Add(added);
                        added.Start();
                        await added.WaitForAsync("silo started", TimeSpan.FromSeconds(90));
                        log.Add($"{at,6:F1} s  silo {added.Name} added");
                        status.Log(log[^1]);
                        break;
                }
            }

            status.Log("faults over; waiting for the producers to finish …");
            await sdk;
            if (!await producer.WaitForExitAsync(TimeSpan.FromMinutes(20)) || producer.ExitCode != 0)
                throw new InvalidOperationException($"the gateway producer did not finish cleanly (exit {(producer.HasExited ? producer.ExitCode : -1)}):\n{producer.Output}");
            await client.WaitUntilAppliedAsync();
            await status.DisposeAsync();

            // The reference: the windowing engine over each key's events in the order its producer published them.
            var expected = Reference(sdkEvents.Concat(gatewayEvents));
            Console.WriteLine($"all published; comparing {expected.Count:N0} closed windows with the results table …");
            var mismatches = await CompareSettledAsync(direct, expected);

            var sorted = recoveries.Order().ToList();
            Console.WriteLine();
            Console.WriteLine("| faults | SIGKILLs | events published | windows compared | mismatches | recovery p50 | recovery worst |");
            Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {rounds} | {kills} | {sdkEvents.Count + gatewayEvents.Count:N0} | {expected.Count:N0} | {mismatches.Count} | {(sorted.Count > 0 ? $"{sorted[sorted.Count / 2]:F1} s" : "—")} | {(sorted.Count > 0 ? $"{sorted[^1]:F1} s" : "—")} |"));
            foreach (var m in mismatches.Take(20)) Console.WriteLine($"mismatch: {m}");
            foreach (var line in await DeadLettersAsync(direct)) Console.WriteLine($"dead letters: {line}");
            Console.WriteLine($"mismatches {mismatches.Count}");
            return mismatches.Count == 0 ? 0 : 1;
        }
        finally
        {
            foreach (var silo in silos) silo.Kill();
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// The results table against <paramref name="expected"/>. Results may still be landing (redelivered items after the
    /// last fault): compares until they match, or until the table has not changed for 10 s (then what differs stays
    /// different), at most 2 minutes. The mismatches, one line each.
    /// </summary>
    internal static async Task<List<string>> CompareSettledAsync(string direct, Dictionary<(string Key, long Start, long End), WindowResult> expected)
    {
        var outputs = Pipeline.OutputNames();
        await using var results = NpgsqlDataSource.Create(direct);
        var reader = new PostgresResultReader(results);
        List<string> mismatches = [];
        var deadline = Stopwatch.StartNew();
        var unchanged = Stopwatch.StartNew();
        (int, long) last = (-1, -1);
        do
        {
            if (mismatches.Count > 0) await Task.Delay(TimeSpan.FromSeconds(2));
            var stored = await ReadTableAsync(reader, outputs);
            var signature = (stored.Count, stored.Values.Sum(r => (long)r.Revision));
            if (signature != last)
            {
                last = signature;
                unchanged.Restart();
            }

            mismatches = Compare(expected, stored);
        }
        while (mismatches.Count > 0 && unchanged.Elapsed < TimeSpan.FromSeconds(10) && deadline.Elapsed < TimeSpan.FromSeconds(120));
        return mismatches;
    }

    /// <summary>The settings of <see cref="Pipeline"/> as environment variables of a silo.</summary>
    internal static Dictionary<string, string> PipelineEnvironment()
    {
        var environment = new Dictionary<string, string>();
        var prefix = $"Pipeline__Pipelines__{Pipeline.Name}__";
        environment[prefix + "Window__Kind"] = "Tumbling";
        environment[prefix + "Window__Size"] = "00:00:01";
        environment[prefix + "MaxOutOfOrderness"] = "00:00:00.200";
        environment[prefix + "AllowedLateness"] = "00:02:00";
        environment[prefix + "Partitions"] = Pipeline.Partitions.ToString(CultureInfo.InvariantCulture);
        string[] functions = ["count", "sum", "min", "max"];
        for (var i = 0; i < functions.Length; i++)
        {
            environment[$"{prefix}Aggregations__{i}__Function"] = functions[i];
            if (i > 0) environment[$"{prefix}Aggregations__{i}__Field"] = "v";
        }

        return environment;
    }

    /// <summary>A silo process of this executable, in PostgreSQL mode, with its own ports (kept across restarts).</summary>
    private static ChildProcess ChaosSilo(string database, int index)
    {
        var environment = new Dictionary<string, string>
        {
            ["Pipeline__Mode"] = "PostgreSql",
            ["Pipeline__ConnectionString"] = database,
            ["Pipeline__ClusterId"] = "chaos",
            ["Pipeline__ServiceId"] = "chaos",
            ["Pipeline__StreamQueues"] = "4",
            ["Pipeline__MigrateOnStart"] = "false",
            ["Pipeline__Streams__VisibilityTimeout"] = "00:00:05",
            ["Pipeline__Streams__PollInterval"] = "00:00:00.050",
            ["Pipeline__SiloPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{FreePorts.Next()}",
            ["Pipeline__Health__Url"] = $"http://127.0.0.1:{FreePorts.Next()}",
            ["Pipeline__Gateway__EventsPerSecondPerCaller"] = "10000000",
            ["Pipeline__Gateway__BurstPerCaller"] = "10000000",
            ["Orleans__Membership__ProbeTimeout"] = "00:00:01",
            ["Orleans__Membership__NumMissedProbesLimit"] = "2",
            ["Orleans__Membership__NumVotesForDeathDeclaration"] = "1",
            ["Logging__LogLevel__Default"] = "Error",
        };
        foreach (var (name, value) in PipelineEnvironment()) environment[name] = value;

        return new ChildProcess(Executables.Silo, ["run"], environment) { Name = index.ToString(CultureInfo.InvariantCulture) };
    }

    /// <summary>Which of <paramref name="keys"/> have their grain on <paramref name="silo"/> right now.</summary>
    private static async Task<List<string>> KeysOnAsync(IClusterClient orleans, ChildProcess silo, IEnumerable<string> keys)
    {
        var port = int.Parse(silo.Environment["Pipeline__SiloPort"], CultureInfo.InvariantCulture);
        var management = orleans.GetGrain<IManagementGrain>(0);
        var on = new List<string>();
        foreach (var key in keys)
        {
            try
            {
                var grain = orleans.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(Pipeline.Name, key));
                if ((await management.GetActivationAddress(grain))?.Endpoint.Port == port) on.Add(key);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The cluster is busy recovering from an earlier fault: fewer keys sampled.
            }

            if (on.Count >= 20) break;
        }

        return on;
    }

    private static async Task<DateTime> DatabaseNowAsync(string database)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var connection = new NpgsqlConnection(database);
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand("SELECT now()", connection);
                return (DateTime)(await command.ExecuteScalarAsync())!;
            }
            catch (NpgsqlException) when (attempt < 50)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200));
            }
        }
    }

    /// <summary>Seconds from <paramref name="since"/> until any of the keys has a result written after it (null: none within 30 s).</summary>
    private static async Task<double?> RecoveryAsync(string database, List<string> keys, DateTime since)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            try
            {
                await using var connection = new NpgsqlConnection(database);
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand(
                    "SELECT extract(epoch FROM min(updated_at) - @since) FROM pipeline_window_results WHERE pipeline = @pipeline AND key = ANY(@keys) AND updated_at > @since", connection);
                command.Parameters.AddWithValue("since", since);
                command.Parameters.AddWithValue("pipeline", Pipeline.Name);
                command.Parameters.AddWithValue("keys", keys.ToArray());
                if (await command.ExecuteScalarAsync() is decimal seconds) return (double)seconds;
            }
            catch (NpgsqlException)
            {
                // PostgreSQL is being stopped on purpose: ask again.
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }

        return null;
    }

    internal static Dictionary<(string Key, long Start, long End), WindowResult> Reference(IEnumerable<Event> events)
    {
        var engines = new Dictionary<string, WindowEngine>(StringComparer.Ordinal);
        var expected = new Dictionary<(string, long, long), WindowResult>();
        var output = new List<WindowResult>();
        var row = new double[1];
        foreach (var e in events)
        {
            if (!engines.TryGetValue(e.Key, out var engine)) engines[e.Key] = engine = new WindowEngine(Pipeline.Windowing);
            row[0] = e.Value;
            output.Clear();
            engine.Process(e.Time, row, 0, output);
            foreach (var result in output)
            {
                if (result.Kind == ResultKind.Partial) continue;
                var at = (e.Key, result.Start, result.End);
                if (!expected.TryGetValue(at, out var held) || result.Revision >= held.Revision) expected[at] = result;
            }
        }

        return expected;
    }

    internal static async Task<Dictionary<(string Key, long Start, long End), WindowResult>> ReadTableAsync(PostgresResultReader reader, IReadOnlyList<string> outputs)
    {
        var stored = new Dictionary<(string, long, long), WindowResult>();
        long after = 0;
        while (true)
        {
            var changes = await reader.ReadChangesAsync(Pipeline.Name, outputs, after, [], 10_000, CancellationToken.None);
            foreach (var change in changes)
            {
                var at = (change.Key, change.Result.Start, change.Result.End);
                if (!stored.TryGetValue(at, out var held) || change.Result.Revision >= held.Revision) stored[at] = change.Result;
                after = change.ChangeId;
            }

            if (changes.Count < 10_000) return stored;
        }
    }

    internal static List<string> Compare(Dictionary<(string Key, long Start, long End), WindowResult> expected, Dictionary<(string Key, long Start, long End), WindowResult> stored)
    {
        var mismatches = new List<string>();
        foreach (var (at, want) in expected)
        {
            if (!stored.TryGetValue(at, out var got)) mismatches.Add($"{at.Key} [{at.Start}, {at.End}): missing");
            else if (got.EventCount != want.EventCount || !got.Values.SequenceEqual(want.Values))
                mismatches.Add($"{at.Key} [{at.Start}, {at.End}): {got.EventCount} events [{string.Join(", ", got.Values)}], expected {want.EventCount} [{string.Join(", ", want.Values)}]");
        }

        foreach (var at in stored.Keys.Where(k => !expected.ContainsKey(k))) mismatches.Add($"{at.Key} [{at.Start}, {at.End}): not expected");
        return mismatches;
    }

    /// <summary>Dead letters by source and reason (the pipeline's and the stream provider's), one line each.</summary>
    internal static async Task<List<string>> DeadLettersAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT source, reason, count(*), min(detail) FROM pipeline_all_dead_letters GROUP BY 1, 2 ORDER BY 1, 2", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var lines = new List<string>();
        while (await reader.ReadAsync())
            lines.Add($"{reader.GetString(0)} '{reader.GetString(1)}': {reader.GetInt64(2)} (e.g. {(reader.IsDBNull(3) ? "" : reader.GetString(3))})");
        return lines;
    }

    internal static long ReadProgress(string path) =>
        File.Exists(path) && long.TryParse(File.ReadAllText(path), NumberStyles.None, CultureInfo.InvariantCulture, out var done) ? done : 0;

    /// <summary>
    /// The gateway producer (<c>chaos-produce URLS SEED KEYS EVENTS RATE PROGRESS</c>): publishes its seeded events in
    /// requests of <see cref="RequestSize"/>, request id <c>chunk-N</c>, through whichever gateway answers; records each
    /// acknowledged request in the progress file, and on start resumes after the last one recorded (the one in flight
    /// when it was killed is sent again with its id, so it is published once).
    /// </summary>
    public static async Task<int> ProduceAsync(string[] args)
    {
        if (args.Length != 7) return 2;
        var urls = args[0].Split(',');
        var events = Workload("gw", int.Parse(args[1], CultureInfo.InvariantCulture), int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture));
        var rate = int.Parse(args[4], CultureInfo.InvariantCulture);
        var progress = args[5];
        var channels = urls.Select(u => GrpcChannel.ForAddress(u)).ToArray();
        var next = ReadProgress(progress);
        var nonce = "";
        if (args[6] == "break" && next > 0)
        {
            next--;
            nonce = $"-{Guid.NewGuid():N}";
        }

        var current = 0;
        var clock = Stopwatch.StartNew();
        var startedAt = next;
        var chunks = (events.Count + RequestSize - 1) / RequestSize;
        // One request at a time: a key's events must reach the pipeline in the order the reference applies them, and
        // concurrent requests promise no order between them.
        for (var chunk = next; chunk < chunks; chunk++)
        {
            var request = new V1.PublishRequest { Pipeline = Pipeline.Name, RequestId = $"chunk-{chunk}{nonce}" };
            foreach (var e in events.Skip((int)chunk * RequestSize).Take(RequestSize))
                request.Events.Add(new V1.Event { Key = e.Key, TimeMs = e.Time, Fields = { ["v"] = e.Value } });
            await SendAsync(request, () => channels[Interlocked.Increment(ref current) % channels.Length]);
            var temporary = progress + ".tmp";
            await File.WriteAllTextAsync(temporary, (chunk + 1).ToString(CultureInfo.InvariantCulture), Encoding.ASCII);
            File.Move(temporary, progress, overwrite: true);
            var due = TimeSpan.FromSeconds((chunk + 1 - startedAt) * RequestSize / (double)rate);
            if (due > clock.Elapsed) await Task.Delay(due - clock.Elapsed);
        }

        return 0;
    }

    /// <summary>Sends one request until a gateway acknowledges it, moving to another gateway when one is down or busy.</summary>
    private static async Task SendAsync(V1.PublishRequest request, Func<GrpcChannel> channel)
    {
        while (true)
        {
            try
            {
                await new V1.PipelineGateway.PipelineGatewayClient(channel()).PublishAsync(request, deadline: DateTime.UtcNow.AddSeconds(40));
                return;
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.ResourceExhausted or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown or StatusCode.Cancelled)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200));
            }
        }
    }
}
