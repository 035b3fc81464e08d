using Orleans.Pipeline.Tests.PostgreSql;
using static Orleans.Pipeline.Tests.Deploy.Manifests;

namespace Orleans.Pipeline.Tests.Deploy;

/// <summary>
/// The rehearsal of the dev overlay (<c>deploy/rehearse.sh</c>, the silo's <c>rehearse</c> command), shortened: the
/// manifests' environment, commands and probes run as processes through a migration, scaling 3 → 5 → 2 and a rolling
/// restart while a producer publishes; the results table must equal the engine's windows.
/// </summary>
public sealed class RehearsalTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task The_dev_overlay_rehearsed_with_processes_scales_and_restarts_without_losing_or_doubling_a_window()
    {
        await using var rehearsal = SiloProcess.StartTool(new Dictionary<string, string>(),
            "rehearse", "--overlay", Kustomize("dev"), "--minutes", "1", "--keys", "200", "--rate", "1000", "--drain-delay", "00:00:02");
        Assert.True(await rehearsal.WaitForExitAsync(TimeSpan.FromMinutes(6)), $"the rehearsal did not finish in 6 minutes:\n{rehearsal.Output}");
        output.WriteLine(rehearsal.Output);
        Assert.True(rehearsal.ExitCode == 0, $"the rehearsal exited with {rehearsal.ExitCode}:\n{rehearsal.Output}");
        Assert.Contains("job migrate: schema migrated", rehearsal.Output, StringComparison.Ordinal);
        Assert.Contains("scale 3 → 5: pod orleans-pipeline-silo-4", rehearsal.Output, StringComparison.Ordinal);
        Assert.Contains("scale 5 → 2: SIGTERM", rehearsal.Output, StringComparison.Ordinal);
        Assert.Contains("rolling restart: pod orleans-pipeline-silo-6", rehearsal.Output, StringComparison.Ordinal);
        Assert.Contains("| 7 | 3 → 5 → 2 |", rehearsal.Output, StringComparison.Ordinal);
        Assert.Contains("mismatches 0", rehearsal.Output, StringComparison.Ordinal);
    }
}
