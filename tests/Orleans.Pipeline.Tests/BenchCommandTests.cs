using System.Globalization;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests;

/// <summary>
/// The load benchmark's quick mode, as CI runs it: every system (engine, naive path, embedded, gateway from another process, PostgreSQL) runs the
/// same seeded workload at 1k and 10k keys, and every system that applies the whole workload produces exactly the
/// engine's closed windows, and a subscriber to every result keeps up. (Its figures are for reading, not asserting: this machine is shared.)
/// </summary>
public sealed class BenchCommandTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Quick_bench_runs_every_system_and_every_one_produces_the_engines_windows()
    {
        var directory = Directory.CreateTempSubdirectory("orleans-pipeline-bench-").FullName;
        await using var bench = SiloProcess.StartTool(new Dictionary<string, string>(), "bench", "--quick", "--out", directory);
        Assert.True(await bench.WaitForExitAsync(TimeSpan.FromMinutes(4)), $"bench --quick did not finish in 4 minutes:\n{bench.Output}");
        output.WriteLine(bench.Output);
        Assert.True(bench.ExitCode == 0, $"bench --quick exited with {bench.ExitCode}:\n{bench.Output}");

        var rows = File.ReadAllLines(Path.Combine(directory, "bench.csv")).Skip(1).Select(l => l.Split(',')).ToList();
        foreach (var keys in new[] { 1_000, 10_000 })
        {
            foreach (var system in new[] { "engine", "naive", "embedded", "gateway", "postgres" })
            {
                var row = rows.SingleOrDefault(r => r[0] == system && int.Parse(r[1], CultureInfo.InvariantCulture) == keys);
                Assert.True(row is not null, $"no row for {system} at {keys} keys");
                Assert.True(double.Parse(row[3], CultureInfo.InvariantCulture) > 0, $"{system} at {keys} keys measured no throughput");
                if (system != "naive") Assert.Equal("true", row[7]);
                if (system is "embedded" or "gateway" or "postgres")
                {
                    // A subscriber on the same machine (the SDK in process; gRPC through the gateway) got every key
                    // result batch the silo emitted, and was told of none missed.
                    var (received, emitted, missed) = (long.Parse(row[14], CultureInfo.InvariantCulture), long.Parse(row[15], CultureInfo.InvariantCulture), long.Parse(row[16], CultureInfo.InvariantCulture));
                    Assert.True(emitted > 0 && received == emitted && missed == 0, $"{system} at {keys} keys: the subscriber got {received} of {emitted} result batches ({missed} missed)");

                    // Work per 1,000 events, counted from the pipeline's instruments: every key activated once (the run
                    // is shorter than the idle timeout), at least one call per key and at most one per event, and the
                    // same windows fired whichever system ran them.
                    var events = double.Parse(row[2], CultureInfo.InvariantCulture);
                    var (calls, activations, results) = (double.Parse(row[17], CultureInfo.InvariantCulture), double.Parse(row[18], CultureInfo.InvariantCulture), double.Parse(row[19], CultureInfo.InvariantCulture));
                    Assert.True(Math.Abs(activations - keys * 1_000 / events) < 0.01, $"{system} at {keys} keys: {activations} activations per 1,000 events, expected {keys * 1_000 / events}");
                    Assert.True(calls >= keys * 1_000 / events && calls <= 1_000, $"{system} at {keys} keys: {calls} key calls per 1,000 events");
                    var embeddedResults = double.Parse(rows.Single(r => r[0] == "embedded" && r[1] == row[1])[19], CultureInfo.InvariantCulture);
                    Assert.True(results > 0 && Math.Abs(results - embeddedResults) < 0.01, $"{system} at {keys} keys: {results} window results per 1,000 events, embedded fired {embeddedResults}");
                }
            }
        }

        Assert.True(File.Exists(Path.Combine(directory, "bench.svg")));
        Assert.Contains("<polyline", await File.ReadAllTextAsync(Path.Combine(directory, "bench.svg")));
    }
}
