using System.Net;
using System.Net.Sockets;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.CommandLine;

/// <summary>
/// The silo's command line: <c>--help</c> on the root and on every command prints usage and exits 0 without starting
/// anything; an unknown command or option, or a bad value, is refused with exit code 2 and a line naming it.
/// </summary>
public sealed class CommandLineTests
{
    public static TheoryData<string> Commands() => ["", "run", "gateway", "migrate", "hash-key", "demo", "gateway-load", "bench", "chaos", "rehearse"];

    [Theory]
    [MemberData(nameof(Commands))]
    public async Task Help_prints_the_usage_and_exits_0_without_starting_a_silo(string command)
    {
        // The ports a silo would take are held here: had the command started one, it would fail, not exit 0.
        using var gateway = Hold(out var gatewayPort);
        using var health = Hold(out var healthPort);
        using var silo = Hold(out var siloPort);
        var environment = new Dictionary<string, string>
        {
            ["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{gatewayPort}",
            ["Pipeline__Health__Url"] = $"http://127.0.0.1:{healthPort}",
            ["Pipeline__SiloPort"] = siloPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        string[] arguments = command.Length == 0 ? ["--help"] : [command, "--help"];
        await using var process = SiloProcess.Start(environment, arguments);

        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(30)), $"'{string.Join(' ', arguments)}' did not exit:\n{process.Output}");
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("Usage:", process.Output, StringComparison.Ordinal);
        if (command.Length > 0) Assert.Contains(command, process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("silo started", process.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "bogus" }, "unknown command 'bogus'")]
    [InlineData(new[] { "demo", "--bogus" }, "--bogus")]
    [InlineData(new[] { "demo", "--keys", "many" }, "--keys")]
    [InlineData(new[] { "chaos", "--minutes" }, "--minutes")]
    public async Task A_bad_command_line_exits_with_code_2_and_names_what_is_wrong(string[] arguments, string named)
    {
        await using var process = SiloProcess.Start(new Dictionary<string, string>(), arguments);

        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(30)), $"'{string.Join(' ', arguments)}' did not exit:\n{process.Output}");
        Assert.Equal(2, process.ExitCode);
        Assert.Contains(process.Errors, line => line.Contains(named, StringComparison.Ordinal));
    }

    private static TcpListener Hold(out int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        port = ((IPEndPoint)listener.LocalEndpoint).Port;
        return listener;
    }
}
