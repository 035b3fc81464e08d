using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Pipeline;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.CommandLine;
using Orleans.Pipeline.Gateway;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.PostgreSql;
using Orleans.Dashboard;
using Orleans.Pipeline.Silo;
using Orleans.Runtime;

// orleans-pipeline-silo [run]              a silo with the gRPC gateway (Pipeline:Gateway); embedded by default,
//                                          Pipeline:Mode=PostgreSql joins a PostgreSQL cluster
// orleans-pipeline-silo gateway            the gRPC gateway alone, connected to the cluster as an Orleans client
// orleans-pipeline-silo migrate            PostgreSQL mode: bring the database schema to this build's version
// orleans-pipeline-silo hash-key [KEY]     a new API key (or the given one) and the hash to configure for it
// orleans-pipeline-silo demo [options]     a silo plus a synthetic workload published through the client SDK
// orleans-pipeline-silo gateway-load [..]  a load generator for a running gateway (its own process)
// The benchmark, the chaos run and the rehearsal are tools (tests/Orleans.Pipeline.Tools): they start throwaway
// PostgreSQL servers and processes, which nothing users deploy should do.
// Exit codes: 0 done, 1 bad configuration, 2 bad command line, 3 start-up failed (database unreachable, schema mismatch).
var cli = new Cli("Orleans.Pipeline: event-time window aggregates per key on Orleans. Without a command: run.", defaultCommand: "run");
cli.Add("run", "A silo with the gRPC gateway (Pipeline:Gateway) and health endpoints (Pipeline:Health); embedded by default, Pipeline:Mode=PostgreSql joins a PostgreSQL cluster. Further arguments are configuration overrides: --Pipeline:Mode=PostgreSql.",
    overrides: true);
cli.Add("gateway", "The gRPC gateway alone, connected to the cluster as an Orleans client. Further arguments are configuration overrides.", overrides: true);
cli.Add("migrate", "PostgreSQL mode: bring the database schema to this build's version (Pipeline:ConnectionString).");
cli.Add("hash-key", "A new API key (or the given one) and the hash to configure for it.")
    .Arguments.Add(new System.CommandLine.Argument<string>("key") { Description = "the key to hash (a new random key when omitted)", Arity = System.CommandLine.ArgumentArity.ZeroOrOne });
cli.Add("demo", "A silo plus a synthetic workload published through the client SDK, with live progress.", options:
    [Cli.Value("--seconds", "how long to publish (20)"), Cli.Value("--keys", "distinct keys (500)"), Cli.Value("--rate", "events/s, 0 = as fast as possible (20000)"),
     Cli.Value("--disorder", "event-time disorder in ms (300)"), Cli.Flag("--postgres", "PostgreSQL mode, on Pipeline:ConnectionString (the tools' demo starts a throwaway server)")]);
cli.Add("gateway-load", "A load generator for a running gateway.", options:
    [Cli.Value("--url", "the gateway (http://127.0.0.1:5080)"), Cli.Value("--seconds", "duration (10)"), Cli.Value("--keys", "distinct keys (500)"), Cli.Value("--batch", "events per request (500)"),
     Cli.Value("--concurrency", "requests in flight (16)"), Cli.Value("--pipeline", "pipeline (demo)"), Cli.Value("--api-key", "API key, when the gateway has keys")]);
var parsed = await cli.ParseAsync(args);
if (parsed.Exit is { } exit) return exit;
var command = parsed.Command;
var rest = parsed.Rest;
DemoOptions? demo = null;
if (command == "demo")
{
    demo = Cli.ParseOptions(() => DemoOptions.Parse(rest), DemoOptions.Usage);
    if (demo is null) return 2;
}
else if (command == "gateway-load")
{
    return await Cli.RunToolAsync(() => GatewayLoadOptions.Parse(rest), GatewayLoadOptions.Usage, GatewayLoad.RunAsync,
        e => e is ArgumentException or Grpc.Core.RpcException or HttpRequestException);
}
else if (command == "hash-key")
{
    var key = rest.FirstOrDefault() ?? ApiKeyHash.NewKey();
    Console.WriteLine($"key:  {key}");
    Console.WriteLine($"hash: {ApiKeyHash.Of(key)}");
    Console.WriteLine("configure the hash (never the key) under Pipeline:Gateway:ApiKeys:<caller>:Hash; give the key to the caller");
    return 0;
}
else if (command is not ("run" or "migrate" or "gateway"))
{
    Console.Error.WriteLine($"error: unknown command '{command}' (commands: run, gateway, migrate, hash-key, demo, gateway-load)");
    return 2;
}

// appsettings.json ships beside the executable; the working directory holds the data.
var configuration = new ConfigurationManager();
configuration.SetBasePath(AppContext.BaseDirectory);
configuration.AddJsonFile("appsettings.json", optional: true);
// Pipeline__SettingsFile: one more JSON file of settings (in Kubernetes, the pipelines' ConfigMap), read after appsettings.json.
var settingsFile = Environment.GetEnvironmentVariable("Pipeline__SettingsFile");
if (!string.IsNullOrWhiteSpace(settingsFile))
{
    try
    {
        configuration.AddJsonFile(Path.GetFullPath(settingsFile), optional: false);
    }
    catch (Exception e) when (e is IOException or InvalidDataException or FormatException)
    {
        Console.Error.WriteLine($"error: Pipeline__SettingsFile '{settingsFile}': {e.Message}");
        return 1;
    }
}

configuration.AddEnvironmentVariables();
if (command is "run" or "gateway") configuration.AddCommandLine(rest);
IReadOnlyList<PipelineDefinition> pipelines;
PipelineClusterOptions cluster;
GatewayOptions gateway;
HealthOptions? health = null;
DashboardSettings? dashboard = null;
try
{
    cluster = PipelineClientConnection.ReadClusterOptions(configuration);
    gateway = GatewayHostingExtensions.ReadGatewayOptions(configuration);
    // The demo can show the dashboard too (Pipeline__Dashboard__Enabled=true …): a picture of a pipeline at work.
    if (command is "run" or "demo") dashboard = DashboardSettings.Read(configuration);
    if (command == "run")
    {
        health = HealthOptions.Read(configuration);
        if (health is not null && gateway.Enabled && (new Uri(gateway.Url).Port == health.Port || gateway.Http1Url is { } http1 && new Uri(http1).Port == health.Port))
            throw new ArgumentException($"{HealthOptions.Section}:Url '{health.Url}' uses a port of the gateway ({GatewayOptions.Section}:Url '{gateway.Url}'); give health its own port");
    }

    pipelines = PipelineConfiguration.Read(configuration);
    if (pipelines.Count == 0 && command is "run" or "demo") throw new ArgumentException($"no pipelines configured under '{PipelineConfiguration.Section}'");
    if (command == "migrate" && cluster.Mode != PipelineMode.PostgreSql)
        throw new ArgumentException("'migrate' needs Pipeline:Mode=PostgreSql and a connection string (embedded mode creates its database itself)");
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

if (command == "migrate")
{
    try
    {
        var migration = await PostgresSchema.MigrateAsync(cluster.ConnectionString!, progress: line => Console.WriteLine($"migrate: {line}"));
        Console.WriteLine(migration.Applied.Count == 0
            ? $"schema already at version {migration.ToVersion}; nothing to do"
            : $"schema migrated from version {migration.FromVersion} to {migration.ToVersion}: {string.Join(", ", migration.Applied.Select(m => $"{m.Version} {m.Name}"))}");
        return 0;
    }
    catch (Exception e) when (e is SchemaMismatchException or Npgsql.NpgsqlException or TimeoutException)
    {
        Console.Error.WriteLine($"error: {Describe(cluster.ConnectionString!)}: {e.Message}");
        return 3;
    }
}

if (demo is { Postgres: true })
{
    cluster.Mode = PipelineMode.PostgreSql;
    if (string.IsNullOrWhiteSpace(cluster.ConnectionString))
    {
        Console.Error.WriteLine("error: 'demo --postgres' needs Pipeline:ConnectionString (Pipeline__ConnectionString=…); the tools' demo starts a throwaway server for it: dotnet run -c Release --project tests/Orleans.Pipeline.Tools -- demo --postgres");
        return 1;
    }
}

var settings = new HostApplicationBuilderSettings { Configuration = configuration, ContentRootPath = AppContext.BaseDirectory };
var withGateway = command == "gateway" || (command == "run" && gateway.Enabled);
IHostApplicationBuilder builder = withGateway || dashboard is not null
    ? WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory })
    : Host.CreateApplicationBuilder(settings);
if (builder is WebApplicationBuilder web)
{
    web.Configuration.AddConfiguration(configuration);
    if (withGateway)
    {
        web.WebHost.ConfigureKestrel(kestrel => kestrel.ListenGateway(gateway));
        if (cluster.Mode == PipelineMode.PostgreSql) web.Services.AddPostgresGatewayStores(cluster.ConnectionString!, gateway.RequestIdRetention);
        web.Services.AddPipelineGateway(gateway);
    }

    if (dashboard is not null) DashboardHosting.Listen(web, dashboard);
}

var databasePath = configuration["Pipeline:DatabasePath"] ?? Path.Combine("data", "pipeline.db");
if (demo is not null) databasePath = Path.Combine(Path.GetTempPath(), $"orleans-pipeline-demo-{Environment.ProcessId}.db");
var siloPort = configuration.GetValue("Pipeline:SiloPort", 11111);
var gatewayPort = configuration.GetValue("Pipeline:GatewayPort", 30000);
var advertised = configuration["Pipeline:AdvertisedAddress"] is { Length: > 0 } address ? IPAddress.Parse(address) : null;
var readiness = new SiloReadiness();
if (command == "gateway")
{
    builder.UseOrleansClient(client => client.UsePipelineCluster(cluster, gatewayPort));
}
else
{
    builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(readiness);
    try
    {
        builder.UseOrleans(silo => silo
            .Configure<Orleans.Configuration.ClusterMembershipOptions>(configuration.GetSection("Orleans:Membership"))
            .UsePipelineCluster(cluster, siloPort, gatewayPort, advertised)
            .AddPipelineSilo(options =>
            {
                options.Pipelines.AddRange(pipelines);
                options.Cluster = cluster;
                options.DatabasePath = databasePath;
                options.MigrateOnStart = configuration.GetValue("Pipeline:MigrateOnStart", true);
                options.RecentResults = configuration.GetValue("Pipeline:RecentResults", options.RecentResults);
                if (configuration.GetValue<double?>("Pipeline:ShedKeysAtMemoryPercent") is { } shed) options.ShedKeysAtMemoryPercent = shed == 0 ? null : shed;
            }));
    }
    catch (Exception e) when (e is ArgumentException or InvalidOperationException)
    {
        // A setting that does not parse, or the silo options' validator listing every problem.
        Console.Error.WriteLine($"error: {e.Message}");
        return 1;
    }
    // The dashboard's grains and its call statistics only when it is on: they cost every grain call a filter.
    if (dashboard is not null) builder.UseOrleans(silo => silo.AddDashboard());
    // In Kubernetes: the silo named after its pod, advertising the pod's IP, silos whose pod is gone declared dead at
    // once, and the pod of a silo the cluster declared dead deleted, so Kubernetes replaces it (POD_NAME, POD_NAMESPACE,
    // POD_IP, ORLEANS_SERVICE_ID, ORLEANS_CLUSTER_ID; RBAC on pods: deploy/k8s/base/rbac.yaml).
    if (configuration.GetValue("Pipeline:Kubernetes:Enabled", false))
        builder.Services.UseKubernetesHosting(kubernetes => kubernetes.Configure(o => o.DeleteDefunctSiloPods = true));
}

using var host = builder is WebApplicationBuilder webBuilder ? BuildWeb(webBuilder, withGateway, dashboard) : ((HostApplicationBuilder)builder).Build();
// Health is served before the silo starts and until it has stopped (see HealthServer).
HealthServer? healthServer = null;
if (health is not null)
{
    try
    {
        healthServer = await HealthServer.StartAsync(health, host.Services, readiness, cluster, configuration);
    }
    catch (IOException e)
    {
        Console.Error.WriteLine($"error: cannot serve health on {health.Url}: {e.Message}");
        return 3;
    }
}

await using var healthScope = healthServer;
try
{
    await host.StartAsync();
}
catch (Exception e)
{
    Console.Error.WriteLine($"error: the silo could not start: {Innermost(e).Message}");
    return 3;
}

if (withGateway) Console.WriteLine($"gateway listening on {gateway.Url} (gRPC and JSON; {(gateway.ApiKeys.Count == 0 ? "no API keys: open to every caller" : $"{gateway.ApiKeys.Count} API key(s)")})");
if (dashboard is not null) Console.WriteLine($"dashboard on {dashboard.Url.TrimEnd('/')}{DashboardSettings.Path}/ (user '{dashboard.Username}')");
if (command == "gateway")
{
    Console.WriteLine($"gateway connected to the cluster ({cluster.Mode} mode, cluster '{cluster.ClusterId}')");
    await host.WaitForShutdownAsync();
    return 0;
}

Console.WriteLine(cluster.Mode == PipelineMode.PostgreSql
    ? $"silo started in PostgreSQL mode (cluster '{cluster.ClusterId}', silo port {siloPort}, gateway port {gatewayPort}, {Describe(cluster.ConnectionString!)}): {pipelines.Count} pipeline(s) [{string.Join(", ", pipelines.Select(p => p.Name))}]"
    : $"silo started in embedded mode: {pipelines.Count} pipeline(s) [{string.Join(", ", pipelines.Select(p => p.Name))}], state in {Path.GetFullPath(databasePath)}");

if (demo is null)
{
    if (health is not null) Console.WriteLine($"health on {health.Url}{HealthOptions.LivePath} and {HealthOptions.ReadyPath}");
    await StopWhenToldAsync(host, health?.DrainDelay ?? TimeSpan.Zero);
    return 0;
}

using var cancellation = new CancellationTokenSource(demo.Duration);
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};
var stopwatch = Stopwatch.StartNew();
var report = await new Demo(host.Services.GetRequiredService<IClusterClient>(), demo, pipelines[0]).RunAsync(cancellation.Token);
await host.StopAsync();
Console.WriteLine($"demo finished after {stopwatch.Elapsed.TotalSeconds:F1} s ({cluster.Mode} mode): {report}; peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MiB");
return 0;

// On a stop signal (SIGTERM, Ctrl-C): readiness turns false at once (ApplicationStopping); the silo keeps working for
// the drain delay, so load balancers stop sending to it, then stops (grains handed off) and the process exits.
static async Task StopWhenToldAsync(IHost host, TimeSpan drain)
{
    var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
    var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    using (lifetime.ApplicationStopping.Register(() => stopping.TrySetResult()))
        await stopping.Task;
    if (drain > TimeSpan.Zero) await Task.Delay(drain);
    await host.StopAsync(CancellationToken.None);
}

static WebApplication BuildWeb(WebApplicationBuilder builder, bool gateway, DashboardSettings? dashboard)
{
    var app = builder.Build();
    if (dashboard is not null) DashboardHosting.Map(app, dashboard);
    if (gateway) app.MapPipelineGateway();
    return app;
}

static string Describe(string connectionString)
{
    var parsed = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
    return $"PostgreSQL at {parsed.Host}:{parsed.Port}, database '{parsed.Database}'";
}

// The most telling exception of a failed start: ours (a PipelineStartupException: the database unreachable, a schema mismatch), else the innermost.
static Exception Innermost(Exception e)
{
    var chain = new List<Exception>();
    for (var current = e; current is not null; current = current is AggregateException { InnerExceptions.Count: 1 } aggregate ? aggregate.InnerExceptions[0] : current.InnerException)
        chain.Add(current);
    return chain.FirstOrDefault(x => x is PipelineStartupException) ?? chain[^1];
}
