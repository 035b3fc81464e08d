using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.Nexmark;

/// <summary>The tools' <c>nexmark</c> command runs every query it knows and prints them beside the published anchors.</summary>
public sealed class NexmarkCommandTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task A_short_nexmark_run_measures_every_query_and_writes_the_table_beside_flinks_and_felderas_figures()
    {
        var directory = Directory.CreateTempSubdirectory("orleans-pipeline-nexmark-").FullName;
        await using var run = SiloProcess.StartTool(new Dictionary<string, string>(), "nexmark", "--events", "20000", "--systems", "embedded", "--rounds", "1", "--out", directory);
        var exited = await run.WaitForExitAsync(TimeSpan.FromMinutes(3));
        output.WriteLine(run.Output);

        Assert.True(exited, "nexmark did not finish in 3 minutes");
        Assert.Equal(0, run.ExitCode);
        var csv = File.ReadAllLines(Path.Combine(directory, "nexmark.csv"));
        Assert.Equal(["q0", "q5", "q7", "q11", "q12"], csv.Skip(1).Select(l => l.Split(',')[0]));
        // Every row: 20,000 source events, of which the bids (46 in 50) were published, at a positive rate.
        Assert.All(csv.Skip(1).Select(l => l.Split(',')), c => Assert.True(c[2] == "20000" && c[3] == "18400" && double.Parse(c[4], System.Globalization.CultureInfo.InvariantCulture) > 0, string.Join(',', c)));
        Assert.Contains("| q7 | highest bid: per auction, tumbling 10 s, then the highest per window | embedded |", run.Output, StringComparison.Ordinal);
        Assert.Contains("| 22,900 |", run.Output, StringComparison.Ordinal); // Flink's q7 per core, printed beside ours
    }
}
