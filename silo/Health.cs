using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Orleans.Runtime;

namespace Orleans.Pipeline.Silo;

/// <summary>
/// The silo's health endpoints (<c>Pipeline:Health</c>): <see cref="LivePath"/> answers while the process does;
/// <see cref="ReadyPath"/> while the silo is active in the cluster, PostgreSQL (in PostgreSQL mode) answers a trivial
/// query within <see cref="DatabaseTimeout"/>, and no shutdown has begun. <see cref="DrainDelay"/>: after a stop
/// signal the silo reports not ready and keeps working this long before it stops, so load balancers take it out
/// before its gateway closes.
/// </summary>
internal sealed record HealthOptions(string Url, TimeSpan DatabaseTimeout, TimeSpan DrainDelay)
{
    public const string Section = "Pipeline:Health";
    public const string LivePath = "/healthz/live";
    public const string ReadyPath = "/healthz/ready";

    /// <summary>The Prometheus scrape endpoint, on the same port (<c>Pipeline:Telemetry:Prometheus</c>, on by default).</summary>
    public const string MetricsPath = "/metrics";
    public const string DefaultUrl = "http://0.0.0.0:8080";

    public int Port => new Uri(Url).Port;

    /// <summary>The health settings of a silo, or null when <c>Pipeline:Health:Enabled=false</c>; throws <see cref="ArgumentException"/> on a bad value.</summary>
    public static HealthOptions? Read(IConfiguration configuration)
    {
        try
        {
            if (!configuration.GetValue($"{Section}:Enabled", true)) return null;
            var url = configuration[$"{Section}:Url"] is { Length: > 0 } configured ? configured : DefaultUrl;
            if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || parsed.Scheme != Uri.UriSchemeHttp || parsed.AbsolutePath != "/")
                throw new ArgumentException($"{Section}:Url '{url}' must be an http:// URL with a host and a port and no path, such as {DefaultUrl}");
            var timeout = configuration.GetValue($"{Section}:DatabaseTimeout", TimeSpan.FromSeconds(2));
            var drain = configuration.GetValue($"{Section}:DrainDelay", TimeSpan.Zero);
            if (timeout <= TimeSpan.Zero || timeout > TimeSpan.FromSeconds(60)) throw new ArgumentException($"{Section}:DatabaseTimeout must be in (0, 60 s]");
            if (drain < TimeSpan.Zero || drain > TimeSpan.FromMinutes(5)) throw new ArgumentException($"{Section}:DrainDelay must be in [0, 5 min]");
            return new HealthOptions(url, timeout, drain);
        }
        catch (InvalidOperationException e)
        {
            throw new ArgumentException($"invalid '{Section}' settings: {e.Message}", e);
        }
    }

    public IPAddress Address()
    {
        var host = new Uri(Url).Host;
        return host is "0.0.0.0" ? IPAddress.Any : host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(host.Trim('[', ']'));
    }
}

/// <summary>
/// Whether this silo is up: set once the silo has completed its start-up (the last lifecycle stage), cleared first
/// when it stops, before grains are handed off. Registered in the silo's services.
/// </summary>
internal sealed class SiloReadiness : ILifecycleParticipant<ISiloLifecycle>
{
    private volatile bool _started;

    public bool Started => _started;

    public void Participate(ISiloLifecycle lifecycle) => lifecycle.Subscribe(nameof(SiloReadiness), ServiceLifecycleStage.Last,
        _ =>
        {
            _started = true;
            return Task.CompletedTask;
        },
        _ =>
        {
            _started = false;
            return Task.CompletedTask;
        });
}

/// <summary>
/// Serves the health endpoints on their own port (HTTP/1.1, as probes and scrapers speak it), in a small web host of
/// their own: up before the silo starts (so "not ready yet" is an answer, not a refused connection), whether or not
/// the gateway runs, and until the silo has stopped (so "shutting down" is an answer too). It does not react to stop
/// signals itself; the silo's host does, and this server stops after it.
/// </summary>
internal sealed class HealthServer : IAsyncDisposable
{
    private const string ReadyTag = "ready";
    private readonly WebApplication _app;

    private HealthServer(WebApplication app) => _app = app;

    public static async Task<HealthServer> StartAsync(HealthOptions options, IServiceProvider silo, SiloReadiness readiness, PipelineClusterOptions cluster, IConfiguration configuration)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.Services.AddSingleton<IHostLifetime, NoSignals>();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(options.Address(), options.Port, listen => listen.Protocols = HttpProtocols.Http1));
        var checks = builder.Services.AddHealthChecks()
            .AddCheck("shutdown", new ShutdownCheck(silo.GetRequiredService<IHostApplicationLifetime>()), tags: [ReadyTag])
            .AddCheck("silo", new SiloActiveCheck(silo, readiness), tags: [ReadyTag]);
        if (cluster.Mode == PipelineMode.PostgreSql)
            checks.AddCheck("postgresql", new PostgresCheck(cluster.ConnectionString!, options.DatabaseTimeout), tags: [ReadyTag]);

        var prometheus = Telemetry.Add(builder.Services, configuration);
        var app = builder.Build();
        if (prometheus) app.MapPrometheusScrapingEndpoint(HealthOptions.MetricsPath);
        app.MapHealthChecks(HealthOptions.LivePath, new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync });
        app.MapHealthChecks(HealthOptions.ReadyPath, new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync });
        await app.StartAsync();
        return new HealthServer(app);
    }

    /// <summary>The status, then one line per check: <c>silo: Unhealthy (the silo is Joining)</c>.</summary>
    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        var text = new StringBuilder().Append(report.Status).Append('\n');
        foreach (var (name, entry) in report.Entries.OrderBy(e => e.Key, StringComparer.Ordinal))
            text.Append(CultureInfo.InvariantCulture, $"{name}: {entry.Status} ({entry.Description})\n");
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(text.ToString());
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }

    private sealed class NoSignals : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class ShutdownCheck(IHostApplicationLifetime lifetime) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(lifetime.ApplicationStopping.IsCancellationRequested
                ? HealthCheckResult.Unhealthy("shutting down")
                : HealthCheckResult.Healthy("running"));
    }

    /// <summary>Healthy once the silo has started and while the cluster's membership lists it as active.</summary>
    private sealed class SiloActiveCheck(IServiceProvider silo, SiloReadiness readiness) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (!readiness.Started) return Task.FromResult(HealthCheckResult.Unhealthy("the silo is not started"));
            var address = silo.GetRequiredService<ILocalSiloDetails>().SiloAddress;
            var status = silo.GetRequiredService<IClusterMembershipService>().CurrentSnapshot.GetSiloStatus(address);
            return Task.FromResult(status == SiloStatus.Active
                ? HealthCheckResult.Healthy($"silo {address} is active")
                : HealthCheckResult.Unhealthy($"silo {address} is {status}"));
        }
    }

    /// <summary>Healthy while PostgreSQL answers <c>SELECT 1</c> on a new connection within the timeout.</summary>
    private sealed class PostgresCheck(string connectionString, TimeSpan timeout) : IHealthCheck
    {
        private readonly string _connectionString = new NpgsqlConnectionStringBuilder(connectionString)
        {
            // A new connection each time: a pooled one could hide a server that stopped answering new ones.
            Pooling = false,
            Timeout = Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)),
            CommandTimeout = Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)),
        }.ConnectionString;

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            try
            {
                await using var connection = new NpgsqlConnection(_connectionString);
                await connection.OpenAsync(deadline.Token);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                await command.ExecuteScalarAsync(deadline.Token);
                return HealthCheckResult.Healthy("PostgreSQL answers");
            }
            catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException or System.Net.Sockets.SocketException && !cancellationToken.IsCancellationRequested)
            {
                return HealthCheckResult.Unhealthy($"PostgreSQL does not answer within {timeout.TotalSeconds:0.#} s: {e.Message}");
            }
        }
    }
}
