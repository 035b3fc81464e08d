namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// The tools' demo on PostgreSQL: with no connection string it starts a throwaway server, hands it to the silo's demo
/// (which the silo alone refuses without one), and the demo runs to its report in PostgreSQL mode.
/// </summary>
public sealed class ToolsDemoTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task The_tools_demo_on_postgres_starts_a_throwaway_server_and_the_silo_demo_closes_windows_on_it()
    {
        await using var demo = SiloProcess.StartTool(new Dictionary<string, string>(), "demo", "--postgres", "--seconds", "4", "--keys", "50", "--rate", "2000");
        var exited = await demo.WaitForExitAsync(TimeSpan.FromMinutes(2));
        output.WriteLine(demo.Output);

        Assert.True(exited, "the demo did not finish in 2 minutes");
        Assert.Equal(0, demo.ExitCode);
        Assert.Contains("starting a throwaway PostgreSQL server", demo.Output, StringComparison.Ordinal);
        Assert.Contains("silo started in PostgreSQL mode", demo.Output, StringComparison.Ordinal);
        var report = demo.Output.Split('\n').Single(l => l.StartsWith("demo finished", StringComparison.Ordinal));
        Assert.Contains("(PostgreSql mode)", report, StringComparison.Ordinal);
        Assert.DoesNotContain(" 0 windows closed", report, StringComparison.Ordinal);
    }
}
