namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// The chaos command's CI variant: silos, PostgreSQL and a producer run as processes and are killed, stopped and
/// restarted while they work; the results table must equal the engine's windows over the same events. And the check
/// can fail: a producer that resends an acknowledged request without its id makes it report mismatches.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ChaosCommandTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Silos_killed_stopped_and_added_a_producer_killed_and_postgres_stopped_leave_every_window_exact()
    {
        var run = await RunAsync("chaos", "--minutes", "0.4", "--keys", "200", "--rate", "1500");
        Assert.True(run.ExitCode == 0, $"chaos exited with {run.ExitCode}:\n{run.Output}");
        Assert.Contains("mismatches 0", run.Output, StringComparison.Ordinal);
        Assert.Contains("SIGKILL silo", run.Output, StringComparison.Ordinal);
        Assert.Contains("SIGKILL the gateway producer", run.Output, StringComparison.Ordinal);
        Assert.Contains("PostgreSQL stopped", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_producer_that_resends_without_its_request_id_makes_the_chaos_check_report_mismatches()
    {
        var run = await RunAsync("chaos", "--minutes", "0.3", "--keys", "200", "--rate", "1500", "--break-dedupe");
        Assert.True(run.ExitCode == 1, $"chaos --break-dedupe exited with {run.ExitCode}:\n{run.Output}");
        Assert.DoesNotContain("mismatches 0", run.Output, StringComparison.Ordinal);
        Assert.Contains("events [", run.Output, StringComparison.Ordinal); // a window counted twice, shown
    }

    private async Task<(int ExitCode, string Output)> RunAsync(params string[] arguments)
    {
        await using var chaos = SiloProcess.StartTool(new Dictionary<string, string>(), arguments);
        Assert.True(await chaos.WaitForExitAsync(TimeSpan.FromMinutes(6)), $"chaos did not finish in 6 minutes:\n{chaos.Output}");
        output.WriteLine(chaos.Output);
        return (chaos.ExitCode, chaos.Output);
    }
}
