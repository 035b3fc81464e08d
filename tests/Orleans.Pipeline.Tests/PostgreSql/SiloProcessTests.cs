using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Pipeline.Client;
using Orleans.Runtime;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Windowing.Tests.Reference;
using static Orleans.Pipeline.Tests.Workload;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// The silo executable in PostgreSQL mode: separate processes that find each other through the membership table,
/// survive one of them being killed (SIGKILL) mid-stream, and refuse bad configuration with a clear error and a
/// non-zero exit code instead of hanging.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SiloProcessTests(PostgresServer postgres, Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private static Dictionary<string, string> PostgresEnvironment(string connectionString, string clusterId) => new()
    {
        ["Pipeline__Mode"] = "PostgreSql",
        ["Pipeline__ConnectionString"] = connectionString,
        ["Pipeline__ClusterId"] = clusterId,
        ["Pipeline__ServiceId"] = "pipeline-process-tests",
        ["Pipeline__StreamQueues"] = "4",
        ["Pipeline__Streams__VisibilityTimeout"] = "00:00:04",
        ["Pipeline__Streams__PollInterval"] = "00:00:00.050",
        ["Pipeline__SiloPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{FreePorts.Next()}",
        ["Orleans__Membership__ProbeTimeout"] = "00:00:01",
        ["Orleans__Membership__NumMissedProbesLimit"] = "2",
        ["Orleans__Membership__NumVotesForDeathDeclaration"] = "1",
        ["Logging__LogLevel__Default"] = "Error",
    };

    /// <summary>More keys than partitions × 100: one partition item holds slices of many keys, and a redelivered item must be applied once by each of them, in order.</summary>
    private static readonly PipelineDefinition Wide = PipelineCluster.Pipelines[0] with { Name = "wide", Partitions = 4 };

    private const int WideKeys = 480;

    [Fact]
    public async Task Two_silo_processes_share_the_work_and_one_killed_mid_stream_loses_nothing_and_counts_nothing_twice()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        var clusterId = $"proc-{Guid.NewGuid():N}";
        var pipelines = SiloProcess.PipelineEnvironment(PipelineCluster.Pipelines.Append(Wide));
        var environments = new[] { PostgresEnvironment(database, clusterId), PostgresEnvironment(database, clusterId) };
        await using var first = SiloProcess.Start(environments[0].Concat(pipelines).ToDictionary());
        await using var second = SiloProcess.Start(environments[1].Concat(pipelines).ToDictionary());
        await Task.WhenAll(first.WaitForOutputAsync("silo started", StartTimeout), second.WaitForOutputAsync("silo started", StartTimeout));

        var options = new PipelineClusterOptions
        {
            Mode = PipelineMode.PostgreSql,
            ConnectionString = database,
            ClusterId = clusterId,
            ServiceId = "pipeline-process-tests",
            StreamQueues = 4,
        };
        var clientBuilder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        clientBuilder.UseOrleansClient(client => client.UsePipelineCluster(options));
        using var clientHost = clientBuilder.Build();
        await clientHost.StartAsync();
        await using var client = new PipelineClient(clientHost.Services.GetRequiredService<IClusterClient>(), new PipelineClientOptions { MaxBatchSize = 40, Linger = TimeSpan.FromMilliseconds(5) });
        Assert.Equal(2, await ActiveSilosAsync(database, clusterId));

        var traces = PipelineCluster.Pipelines
            .SelectMany(p => Enumerable.Range(31, 3).Select(seed => (Pipeline: p, Key: $"seed-{seed}", Events: Events(seed, p.Windowing.Window.Kind))))
            .Concat(Enumerable.Range(0, WideKeys).Select(k => (Pipeline: Wide, Key: $"wide-{k}", Events: Events(5_000 + k, Windowing.WindowKind.Tumbling).Take(12).ToList())))
            .ToList();
        // A third applied; a third sent, and the silo hosting more of the keys killed (SIGKILL) with those in
        // flight; then the rest. Its keys continue on the survivor from their persisted state.
        var thirds = traces.Select(t => t.Events.Count / 3).ToList();
        await PublishRangeAsync(client, traces, t => t.Events.Take(thirds[traces.IndexOf(t)]));
        for (var i = 0; i < traces.Count; i++) await WaitAppliedAsync(client, traces[i].Pipeline.Name, traces[i].Key, thirds[i]);
        var management = clientHost.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);
        var hosts = new List<int>();
        foreach (var t in traces)
        {
            var grain = clientHost.Services.GetRequiredService<IClusterClient>().GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(t.Pipeline.Name, t.Key));
            hosts.Add((await management.GetActivationAddress(grain))?.Endpoint.Port ?? 0);
        }

        var firstPort = int.Parse(environments[0]["Pipeline__SiloPort"], System.Globalization.CultureInfo.InvariantCulture);
        var firstHosts = hosts.Count(p => p == firstPort);
        var (victim, survivor) = firstHosts * 2 >= hosts.Count ? (first, second) : (second, first);
        Assert.True(Math.Max(firstHosts, hosts.Count - firstHosts) > 0, "no key grain was active on either silo");
        await PublishRangeAsync(client, traces, t => t.Events.Skip(thirds[traces.IndexOf(t)]).Take(thirds[traces.IndexOf(t)]));
        victim.Kill();
        await PublishRangeAsync(client, traces, t => t.Events.Skip(2 * thirds[traces.IndexOf(t)]));

        foreach (var (pipeline, key, events) in traces)
        {
            var (expected, late) = Expected(pipeline, events);
            string? difference = null;
            try
            {
                await WaitUntilAsync(async () =>
                {
                    difference = Difference(await ReadResultsAsync(database, pipeline, key), expected);
                    return difference is null && await CountAsync(database, $"SELECT count(*) FROM pipeline_late_events WHERE pipeline = '{pipeline.Name}' AND key = '{key}'") == late;
                }, $"results of {pipeline.Name}/{key}");
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{pipeline.Name}/{key}: the results table differs from the reference: {difference ?? "(late events differ)"}\nsurvivor's output:\n{survivor.Output}");
            }
        }

        Assert.Equal(0, await CountAsync(database, "SELECT count(*) FROM pipeline_all_dead_letters"));
        long repeats = 0;
        foreach (var t in traces) repeats += (await client.QueryAsync(t.Pipeline.Name, t.Key)).DuplicateBatches;
        output.WriteLine($"{Math.Max(firstHosts, hosts.Count - firstHosts)} of {hosts.Count} keys moved off the killed silo; {repeats} batches were delivered again and dropped");
        await clientHost.StopAsync();
    }

    [Fact]
    public async Task A_database_that_is_down_at_start_up_is_a_clear_error_and_exit_code_3_not_a_hang()
    {
        var port = FreePorts.Next();
        var environment = PostgresEnvironment($"Host=127.0.0.1;Port={port};Username=postgres;Database=pipeline;Timeout=5", "down");
        await using var silo = SiloProcess.Start(environment);

        Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the silo is still running:\n{silo.Output}");
        Assert.Equal(3, silo.ExitCode);
        Assert.Contains(silo.Errors, l => l.Contains($"cannot use PostgreSQL at 127.0.0.1:{port}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_database_that_does_not_exist_is_named_in_the_error()
    {
        var connectionString = postgres.Server.ConnectionString("no_such_database");
        await using var silo = SiloProcess.Start(PostgresEnvironment(connectionString, "missing"));

        Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the silo is still running:\n{silo.Output}");
        Assert.Equal(3, silo.ExitCode);
        Assert.Contains(silo.Errors, l => l.Contains("database \"no_such_database\" does not exist", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("PostgreSql", "", "no connection string is set")]
    [InlineData("Postgres", "Host=127.0.0.1", "Pipeline:Mode")]
    [InlineData("PostgreSql", "Hots=127.0.0.1", "not a valid PostgreSQL connection string")]
    public async Task Bad_mode_settings_exit_with_code_1_and_say_what_is_wrong(string mode, string connectionString, string message)
    {
        await using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Pipeline__Mode"] = mode,
            ["Pipeline__ConnectionString"] = connectionString,
        });

        Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the silo is still running:\n{silo.Output}");
        Assert.Equal(1, silo.ExitCode);
        Assert.Contains(silo.Errors, l => l.StartsWith("error: ", StringComparison.Ordinal) && l.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_migrate_command_applies_the_schema_once_and_a_silo_without_migrations_refuses_an_old_schema()
    {
        var database = await postgres.NewDatabaseAsync();
        var environment = PostgresEnvironment(database, "migrate");
        await PostgresSchema.MigrateAsync(database, PostgresSchema.CurrentVersion - 1);

        await using (var strict = SiloProcess.Start(new Dictionary<string, string>(environment) { ["Pipeline__MigrateOnStart"] = "false" }))
        {
            Assert.True(await strict.WaitForExitAsync(TimeSpan.FromSeconds(60)), strict.Output);
            Assert.Equal(3, strict.ExitCode);
            Assert.Contains(strict.Errors, l => l.Contains($"schema is at version {PostgresSchema.CurrentVersion - 1}", StringComparison.Ordinal) && l.Contains("migrate", StringComparison.Ordinal));
            // The hint names the setting the silo actually reads.
            Assert.Contains(strict.Errors, l => l.Contains("Pipeline:MigrateOnStart=true", StringComparison.Ordinal));
        }

        await using (var first = SiloProcess.Start(environment, "migrate"))
        {
            Assert.True(await first.WaitForExitAsync(TimeSpan.FromSeconds(60)), first.Output);
            Assert.Equal(0, first.ExitCode);
            Assert.Contains($"from version {PostgresSchema.CurrentVersion - 1} to {PostgresSchema.CurrentVersion}", first.Output, StringComparison.Ordinal);
            // Progress as it goes: the version found and each step applied.
            Assert.Contains($"migrate: schema at version {PostgresSchema.CurrentVersion - 1}; 1 step(s) to apply", first.Output, StringComparison.Ordinal);
            Assert.Contains($"migrate: step {PostgresSchema.CurrentVersion} (", first.Output, StringComparison.Ordinal);
        }

        await using var second = SiloProcess.Start(environment, "migrate");
        Assert.True(await second.WaitForExitAsync(TimeSpan.FromSeconds(60)), second.Output);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains($"schema already at version {PostgresSchema.CurrentVersion}; nothing to do", second.Output, StringComparison.Ordinal);
    }

    private static async Task PublishRangeAsync(PipelineClient client, List<(PipelineDefinition Pipeline, string Key, List<EventStep> Events)> traces, Func<(PipelineDefinition Pipeline, string Key, List<EventStep> Events), IEnumerable<EventStep>> range)
    {
        await Task.WhenAll(traces.Select(async t =>
        {
            foreach (var e in range(t)) await client.PublishAsync(t.Pipeline.Name, ToEvent(t.Key, e));
        }));
        await client.FlushAsync();
    }

    private static async Task<Dictionary<(long, long), Windowing.WindowResult>> ReadResultsAsync(string database, PipelineDefinition pipeline, string key) =>
        await PostgresQueries.ReadResultsAsync(database, pipeline, key);

    private static Task<long> CountAsync(string database, string sql) => PostgresQueries.ScalarAsync(database, sql);

    private static Task<long> ActiveSilosAsync(string database, string clusterId) =>
        PostgresQueries.ScalarAsync(database, $"SELECT count(*) FROM orleans_membership WHERE deployment_id = '{clusterId}' AND status = 3");
}
