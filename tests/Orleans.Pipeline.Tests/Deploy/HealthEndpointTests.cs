using System.Diagnostics;
using System.Globalization;
using System.Net;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Testing;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.Deploy;

/// <summary>
/// The silo process's health endpoints, as a kubelet probes them: <c>/healthz/live</c> answers while the process
/// runs; <c>/healthz/ready</c> only while the silo is active, PostgreSQL answers and no shutdown has begun.
/// </summary>
public sealed class HealthEndpointTests(Xunit.Abstractions.ITestOutputHelper output)
{
    public const string LivePath = "/healthz/live";
    public const string ReadyPath = "/healthz/ready";

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Ready_only_once_active_not_while_postgres_is_down_nor_during_a_graceful_shutdown_and_live_throughout()
    {
        // A server of its own: this test stops it.
        await using var postgres = await LocalPostgres.StartAsync();
        var database = await postgres.CreateDatabaseAsync("health");
        await PostgresSchema.MigrateAsync(database);
        var environment = new Dictionary<string, string>
        {
            ["Pipeline__Mode"] = "PostgreSql",
            ["Pipeline__ConnectionString"] = database,
            ["Pipeline__ClusterId"] = "health",
            ["Pipeline__ServiceId"] = "health",
            ["Pipeline__SiloPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{FreePorts.Next()}",
            ["Pipeline__Health__DatabaseTimeout"] = "00:00:01",
            ["Pipeline__Health__DrainDelay"] = "00:00:03",
            ["Logging__LogLevel__Default"] = "Error",
        };
        await using var silo = SiloProcess.Start(environment.Concat(SiloProcess.PipelineEnvironment(PipelineCluster.Pipelines)).ToDictionary());
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };

        // The health port answers before the silo has joined the cluster: not ready, but live.
        var first = await WaitForAsync(http, silo, ReadyPath, status => status is not null, Patience);
        Assert.True(first.Status == HttpStatusCode.ServiceUnavailable, $"the first readiness answer was {first.Status}: {first.Body}");
        Assert.Contains("silo: Unhealthy", first.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(http, silo.HealthUrl + LivePath)).Status);

        var ready = await WaitForAsync(http, silo, ReadyPath, status => status == HttpStatusCode.OK, Patience);
        Assert.Contains("is active", ready.Body, StringComparison.Ordinal);
        Assert.Contains("postgresql: Healthy", ready.Body, StringComparison.Ordinal);
        output.WriteLine(ready.Body);

        // PostgreSQL stopped: not ready within a probe or two, still live; ready again once it is back.
        await postgres.PauseAsync();
        var down = await WaitForAsync(http, silo, ReadyPath, status => status == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(20));
        Assert.Contains("postgresql: Unhealthy", down.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(http, silo.HealthUrl + LivePath)).Status);
        await postgres.ResumeAsync();
        await WaitForAsync(http, silo, ReadyPath, status => status == HttpStatusCode.OK, Patience);

        // SIGTERM: not ready at once, while the process still runs and is live; then it exits cleanly.
        var clock = Stopwatch.StartNew();
        silo.Terminate();
        var stopping = await WaitForAsync(http, silo, ReadyPath, status => status == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10));
        Assert.False(silo.HasExited, "the process exited before readiness turned false");
        Assert.Contains("shutdown: Unhealthy", stopping.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(http, silo.HealthUrl + LivePath)).Status);
        output.WriteLine($"not ready {clock.ElapsedMilliseconds} ms after SIGTERM");
        Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the silo did not exit after SIGTERM:\n{silo.Output}");
        Assert.Equal(0, silo.ExitCode);
    }

    [Fact]
    public async Task Health_is_served_on_its_own_port_without_the_gateway_and_only_health_is_served_there()
    {
        await using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Pipeline__Gateway__Enabled"] = "false",
            ["Pipeline__SiloPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Logging__LogLevel__Default"] = "Error",
        });
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };

        var ready = await WaitForAsync(http, silo, ReadyPath, status => status == HttpStatusCode.OK, Patience);
        Assert.DoesNotContain("postgresql", ready.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(http, silo.HealthUrl + LivePath)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync(http, silo.HealthUrl + "/v1/pipelines")).Status);
    }

    [Fact]
    public async Task A_health_port_that_is_the_gateway_port_is_refused_with_exit_code_1()
    {
        var port = FreePorts.Next();
        await using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{port}",
            ["Pipeline__Health__Url"] = $"http://127.0.0.1:{port}",
        });

        Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)), silo.Output);
        Assert.Equal(1, silo.ExitCode);
        Assert.Contains(silo.Errors, l => l.Contains("Pipeline:Health:Url", StringComparison.Ordinal));
    }

    /// <summary>Polls like a kubelet (every 100 ms here) until an answer satisfies <paramref name="until"/>; a refused connection is no answer.</summary>
    internal static async Task<(HttpStatusCode? Status, string Body)> WaitForAsync(HttpClient http, SiloProcess silo, string path, Func<HttpStatusCode?, bool> until, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        (HttpStatusCode? Status, string Body) last = (null, "");
        while (clock.Elapsed < timeout)
        {
            last = await GetAsync(http, silo.HealthUrl + path);
            if (until(last.Status)) return last;
            if (silo.HasExited) break;
            await Task.Delay(100);
        }

        throw new TimeoutException($"{path}: last answer {last.Status?.ToString() ?? "none"} {last.Body} (exited: {silo.HasExited}); the silo's output:\n{silo.Output}");
    }

    internal static async Task<(HttpStatusCode? Status, string Body)> GetAsync(HttpClient http, string url)
    {
        try
        {
            using var response = await http.GetAsync(url);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return (null, e.Message);
        }
    }
}
