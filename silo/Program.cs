using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Pipeline;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.Silo;

// orleans-pipeline-silo [run]            a silo with embedded defaults (localhost clustering, memory streams, SQLite state)
// orleans-pipeline-silo demo [options]   a silo plus a synthetic workload published through the client SDK
var command = args.FirstOrDefault(a => !a.StartsWith('-')) ?? "run";
var rest = args.SkipWhile(a => a != command).Skip(1).ToArray();
DemoOptions? demo = null;
if (command == "demo")
{
    try
    {
        demo = DemoOptions.Parse(rest);
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"error: {e.Message}");
        Console.Error.WriteLine(DemoOptions.Usage);
        return 2;
    }
}
else if (command != "run")
{
    Console.Error.WriteLine($"error: unknown command '{command}' (commands: run, demo)");
    return 2;
}

// appsettings.json ships beside the executable; the working directory holds the data.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = command == "demo" ? [] : args,
    ContentRootPath = AppContext.BaseDirectory,
});
IReadOnlyList<PipelineDefinition> pipelines;
try
{
    pipelines = PipelineConfiguration.Read(builder.Configuration);
    if (pipelines.Count == 0) throw new ArgumentException($"no pipelines configured under '{PipelineConfiguration.Section}'");
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

var databasePath = builder.Configuration["Pipeline:DatabasePath"] ?? Path.Combine("data", "pipeline.db");
if (demo is not null) databasePath = Path.Combine(Path.GetTempPath(), $"orleans-pipeline-demo-{Environment.ProcessId}.db");
builder.UseOrleans(silo => silo
    .UseLocalhostClustering()
    .AddPipelineSilo(options =>
    {
        options.Pipelines.AddRange(pipelines);
        options.DatabasePath = databasePath;
    }));

using var host = builder.Build();
await host.StartAsync();
Console.WriteLine($"silo started: {pipelines.Count} pipeline(s) [{string.Join(", ", pipelines.Select(p => p.Name))}], state in {Path.GetFullPath(databasePath)}");

if (demo is null)
{
    await host.WaitForShutdownAsync();
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
Console.WriteLine($"demo finished after {stopwatch.Elapsed.TotalSeconds:F1} s: {report}; peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MiB");
return 0;
