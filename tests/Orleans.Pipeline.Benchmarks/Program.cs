using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Orleans.Pipeline.Benchmarks;

if (args is ["state-size"])
{
    StateSize.Report();
    return 0;
}

// Reports go beside the build output, not into whatever folder the command was run from (the repository's top level
// holds only what the project is made of); --artifacts chooses another folder.
var config = DefaultConfig.Instance.WithArtifactsPath(Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts"));
var summaries = BenchmarkSwitcher.FromAssembly(typeof(WindowEngineBenchmarks).Assembly).Run(args, config);
foreach (var summary in summaries) PrintPerEventTable(summary);
return 0;

static void PrintPerEventTable(Summary summary)
{
    // Per-event figures belong to the engine's event benchmarks (those with a window kind), not to one-off costs.
    if (summary.Reports.Length == 0 || summary.BenchmarksCases.Any(b => b.Parameters.Items.All(p => p.Name != "Kind"))) return;
    Console.WriteLine();
    Console.WriteLine("| benchmark | kind | aggregations | events/s (one core) | ns/event | × baseline time | bytes/event |");
    Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
    foreach (var report in summary.Reports.Where(r => r.ResultStatistics is not null))
    {
        var benchmark = report.BenchmarkCase;
        var nsPerEvent = report.ResultStatistics!.Mean;
        var baseline = summary.Reports.FirstOrDefault(r =>
            r.ResultStatistics is not null && summary.IsBaseline(r.BenchmarkCase) &&
            r.BenchmarkCase.Parameters.DisplayInfo == benchmark.Parameters.DisplayInfo);
        var ratio = baseline is null ? double.NaN : nsPerEvent / baseline.ResultStatistics!.Mean;
        var bytes = report.GcStats.GetBytesAllocatedPerOperation(benchmark) ?? 0;
        Console.WriteLine(
            $"| {benchmark.Descriptor.WorkloadMethod.Name} | {benchmark.Parameters["Kind"]} | {benchmark.Parameters["Aggregations"]} | " +
            $"{1e9 / nsPerEvent:N0} | {nsPerEvent:F2} | {ratio:F1} | {bytes:F2} |");
    }
}
