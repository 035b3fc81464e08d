using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.CommandLine;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.Testing;
using Orleans.Pipeline.Testing.Nexmark;

namespace Orleans.Pipeline.Tools;

/// <summary>Options of <c>nexmark</c>.</summary>
internal sealed record NexmarkOptions(long Events, string[] Systems, string[] Queries, string Output, int Rounds = 2)
{
    public static readonly string[] AllSystems = ["embedded", "postgres"];

    public const string Usage = "usage: nexmark [--events N source events per query (1000000)] [--systems embedded,postgres] [--queries q0,q5,q7,q11,q12; q5s1,q7s1: first stages alone] [--rounds N, the best kept (2)] [--out DIR (nexmark-results)]";

    public static NexmarkOptions Parse(string[] args)
    {
        var options = new NexmarkOptions(1_000_000, AllSystems, NexmarkBench.Anchors.Where(a => a.Value.Query.Downstream is not null || !a.Key.EndsWith("s1", StringComparison.Ordinal)).Select(a => a.Key).ToArray(), "nexmark-results");
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Length) throw new ArgumentException($"option {name} needs a value");
            var value = args[++i];
            options = name switch
            {
                "--events" => options with { Events = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 50 ? n : throw new ArgumentException($"--events: '{value}' is not a whole number of at least 50") },
                "--systems" => options with { Systems = value.Split(',').Select(s => AllSystems.Contains(s) ? s : throw new ArgumentException($"--systems: unknown system '{s}' (known: {string.Join(", ", AllSystems)})")).ToArray() },
                "--queries" => options with { Queries = value.Split(',').Select(q => NexmarkBench.Anchors.ContainsKey(q) ? q : throw new ArgumentException($"--queries: unknown query '{q}' (known: {string.Join(", ", NexmarkBench.Anchors.Keys)})")).ToArray() },
                "--out" => options with { Output = value },
                "--rounds" => options with { Rounds = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var r) && r > 0 ? r : throw new ArgumentException($"--rounds: '{value}' is not a positive whole number") },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        return options;
    }
}

/// <summary>
/// <c>nexmark</c>: the Nexmark queries that are pipelines today, in embedded mode and in PostgreSQL mode
/// (exactly-once, a throwaway server with fsync on), each over the same seeded stream. The producer keeps the bids
/// (46 of every 50 events) and publishes them through the client SDK in process; figures count source events, as
/// Nexmark does. Events/s per core is from the CPU time this process used, plus the PostgreSQL server's in cluster
/// mode. The published per-core figures of Flink
/// and Feldera are printed beside them. q5 and q7 run whole (per auction, then a chained pipeline across auctions);
/// <c>q5s1</c> and <c>q7s1</c>, their first stage alone, show what the second stage costs (not run unless named).
/// </summary>
internal static class NexmarkBench
{
    /// <summary>Per-core events/s as published: Flink 2.0 (nexmark repository, 4 × 16 cores), Feldera (its benchmark README, 16 cores).</summary>
    internal static readonly Dictionary<string, (NexmarkQuery Query, double? Flink, double? Feldera)> Anchors = new(StringComparer.Ordinal)
    {
        ["q0"] = (NexmarkQueries.Q0, 379_000, 436_000),
        ["q5"] = (NexmarkQueries.Q5, 74_500, 412_000),
        ["q5s1"] = (NexmarkQueries.Q5 with { Name = "q5 (stage 1)", Description = "bids per auction, hopping 10 s every 2 s (first stage alone)", Downstream = null }, null, null),
        ["q7"] = (NexmarkQueries.Q7, 22_900, 196_000),
        ["q7s1"] = (NexmarkQueries.Q7 with { Name = "q7 (stage 1)", Description = "highest bid per auction, tumbling 10 s (first stage alone)", Downstream = null }, null, null),
        ["q11"] = (NexmarkQueries.Q11, 46_100, null),
        ["q12"] = (NexmarkQueries.Q12, 194_000, 418_000),
    };

    private sealed record Row(string Query, string System, long SourceEvents, long Bids, double EventsPerSecond, double EventsPerCore, double? Flink, double? Feldera);

    public static async Task<int> RunAsync(NexmarkOptions options)
    {
        Directory.CreateDirectory(options.Output);
        Console.WriteLine($"nexmark: {string.Join(", ", options.Queries)} in {string.Join(", ", options.Systems)}, {options.Events:N0} source events each (seed 1, 10,000 events/s of event time); {Environment.ProcessorCount} cores");
        var bids = new NexmarkGenerator(new NexmarkConfig(), seed: 1).Take(options.Events).OfType<NexmarkBid>().ToArray();
        var rows = new List<Row>();
        LocalPostgres? postgres = null;
        try
        {
            // Unmeasured: JIT compilation and the first silos' start-up would count against whichever query ran first.
            Console.WriteLine("warming up (each query once, unmeasured, embedded) …");
            foreach (var name in options.Queries) await RunAsync(Anchors[name].Query, "embedded", bids[..Math.Min(bids.Length, 100_000)], null);
            Console.WriteLine($"{options.Rounds} round(s) per system; the best of each query is kept");
            foreach (var system in options.Systems)
            {
                if (system == "postgres" && postgres is null)
                {
                    Console.WriteLine("starting a throwaway PostgreSQL server (fsync on) …");
                    postgres = await LocalPostgres.StartAsync(durable: true);
                }

                // Rounds over all queries, the best of each kept: a process runs faster for its first minutes
                // (compilation tiers, the thread pool and the heap settling) whatever it runs, which would favour
                // the queries that happen to run later.
                var best = new Dictionary<string, Row>(StringComparer.Ordinal);
                for (var round = 1; round <= options.Rounds; round++)
                {
                    foreach (var name in options.Queries)
                    {
                        var (query, flink, feldera) = Anchors[name];
                        var (elapsed, cpu) = await RunAsync(query, system, bids, postgres);
                        var row = new Row(name, system, options.Events, bids.Length, options.Events / elapsed.TotalSeconds, options.Events / Math.Max(cpu.TotalSeconds, 1e-3), flink, feldera);
                        if (!best.TryGetValue(name, out var kept) || row.EventsPerSecond > kept.EventsPerSecond) best[name] = row;
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   round {round}: {name,-4} {system,-9} {row.EventsPerSecond,12:N0} events/s {row.EventsPerCore,12:N0} per core"));
                    }
                }

                rows.AddRange(options.Queries.Select(q => best[q]));
            }
        }
        finally
        {
            if (postgres is not null) await postgres.DisposeAsync();
        }

        Console.WriteLine();
        Console.WriteLine("| query | what runs | system | events/s | events/s per core | Flink per core | ÷ Flink | Feldera per core | ÷ Feldera |");
        Console.WriteLine("|---|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Anchors[r.Query].Query.Name} | {Anchors[r.Query].Query.Description} | {r.System} | {r.EventsPerSecond:N0} | {r.EventsPerCore:N0} | {Anchor(r.Flink)} | {Ratio(r.EventsPerCore, r.Flink)} | {Anchor(r.Feldera)} | {Ratio(r.EventsPerCore, r.Feldera)} |"));
        }

        File.WriteAllText(Path.Combine(options.Output, "nexmark.json"), JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllLines(Path.Combine(options.Output, "nexmark.csv"), ["query,system,source_events,bids,events_per_second,events_per_core_second,flink_per_core,feldera_per_core",
            .. rows.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Query},{r.System},{r.SourceEvents},{r.Bids},{r.EventsPerSecond:F0},{r.EventsPerCore:F0},{r.Flink},{r.Feldera}"))]);
        Console.WriteLine($"wrote {Path.Combine(options.Output, "nexmark.csv")} and nexmark.json");
        return 0;
    }

    private static string Anchor(double? value) => value is { } v ? v.ToString("N0", CultureInfo.InvariantCulture) : "—";

    private static string Ratio(double ours, double? anchor) => anchor is { } a ? (ours / a).ToString("0.00", CultureInfo.InvariantCulture) : "—";

    /// <summary>One query in one system: a silo of its own, every bid published and applied; the wall time and this process's CPU time.</summary>
    private static async Task<(TimeSpan Elapsed, TimeSpan Cpu)> RunAsync(NexmarkQuery query, string system, NexmarkBid[] bids, LocalPostgres? postgres)
    {
        var cluster = new PipelineClusterOptions { ClusterId = $"nexmark-{Guid.NewGuid():N}", ServiceId = "nexmark" };
        // Cluster mode counts the database server's CPU too: it does the durable part of the work.
        TimeSpan DatabaseCpu() => system == "postgres" ? postgres!.CpuTime() : TimeSpan.Zero;
        var database = Path.Combine(Path.GetTempPath(), $"orleans-pipeline-nexmark-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        if (system == "postgres")
        {
            cluster.Mode = PipelineMode.PostgreSql;
            cluster.ConnectionString = await postgres!.CreateDatabaseAsync($"nexmark_{Guid.NewGuid():N}");
        }

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Error);
        builder.UseOrleans(silo => silo
            .UsePipelineCluster(cluster, FreePorts.Next(), FreePorts.Next())
            .AddPipelineSilo(o =>
            {
                o.Pipelines.AddRange(query.Pipelines);
                o.Cluster = cluster;
                o.DatabasePath = database;
            }));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            await using var client = new PipelineClient(host.Services.GetRequiredService<IClusterClient>());
            var published = 0;
            var clock = Stopwatch.StartNew();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime + DatabaseCpu();
            await using (LiveStatus.Start($"   {query.Name}, {system}", () =>
                [("published", $"{Volatile.Read(ref published):N0} of {bids.Length:N0} bids ({Volatile.Read(ref published) / clock.Elapsed.TotalSeconds:N0}/s)")]))
            {
                foreach (var bid in bids)
                {
                    await client.PublishAsync(query.Pipeline.Name, query.ToEvent(bid));
                    published++;
                }

                await client.WaitUntilAppliedAsync();
            }

            return (clock.Elapsed, Process.GetCurrentProcess().TotalProcessorTime + DatabaseCpu() - cpu);
        }
        finally
        {
            await host.StopAsync();
            File.Delete(database);
        }
    }
}
