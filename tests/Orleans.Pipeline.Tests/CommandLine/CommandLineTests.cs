using System.Net;
using System.Net.Sockets;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.CommandLine;

/// <summary>
/// The command lines of the silo and of the tools: <c>--help</c> on the root and on every command prints usage and
/// exits 0 without starting anything; an unknown command or option, or a bad value, is refused with exit code 2 and a
/// line naming it.
/// </summary>
public sealed class CommandLineTests
{
    public static TheoryData<bool, string> Commands() => new()
    {
        { false, "" }, { false, "run" }, { false, "gateway" }, { false, "migrate" }, { false, "hash-key" }, { false, "demo" }, { false, "gateway-load" },
        { true, "" }, { true, "bench" }, { true, "chaos" }, { true, "rehearse" }, { true, "demo" },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public async Task Help_prints_the_usage_and_exits_0_without_starting_a_silo(bool tool, string command)
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
        await using var process = tool ? SiloProcess.StartTool(environment, arguments) : SiloProcess.Start(environment, arguments);

        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(30)), $"'{string.Join(' ', arguments)}' did not exit:\n{process.Output}");
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("Usage:", process.Output, StringComparison.Ordinal);
        if (command.Length > 0) Assert.Contains(command, process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("silo started", process.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false, new[] { "bogus" }, "unknown command 'bogus'")]
    [InlineData(false, new[] { "demo", "--bogus" }, "--bogus")]
    [InlineData(false, new[] { "demo", "--keys", "many" }, "--keys")]
    [InlineData(false, new[] { "chaos" }, "unknown command 'chaos'")]
    [InlineData(true, new[] { "chaos", "--minutes" }, "--minutes")]
    [InlineData(true, new[] { "bench", "--bogus" }, "--bogus")]
    [InlineData(true, new string[0], "a command is required")]
    [InlineData(true, new[] { "run" }, "'run'")]
    public async Task A_bad_command_line_exits_with_code_2_and_names_what_is_wrong(bool tool, string[] arguments, string named)
    {
        await using var process = tool ? SiloProcess.StartTool(new Dictionary<string, string>(), arguments) : SiloProcess.Start(new Dictionary<string, string>(), arguments);

        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(30)), $"'{string.Join(' ', arguments)}' did not exit:\n{process.Output}");
        Assert.Equal(2, process.ExitCode);
        Assert.Contains(process.Errors, line => line.Contains(named, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_silo_demo_on_postgres_without_a_connection_string_exits_1_and_points_at_the_tools()
    {
        await using var process = SiloProcess.Start(new Dictionary<string, string>(), "demo", "--postgres", "--seconds", "1");

        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(30)), process.Output);
        Assert.Equal(1, process.ExitCode);
        Assert.Contains(process.Errors, line => line.Contains("Pipeline:ConnectionString", StringComparison.Ordinal) && line.Contains("Orleans.Pipeline.Tools", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Pipeline__ShedKeysAtMemoryPercent", "150", "Pipeline:ShedKeysAtMemoryPercent must be above 0 and at most 100")]
    [InlineData("Pipeline__ShedKeysAtMemoryPercent", "half", "'half' at 'Pipeline:ShedKeysAtMemoryPercent'")]
    [InlineData("Pipeline__RecentResults", "0", "Pipeline:RecentResults must be at least 1")]
    public async Task A_silo_setting_out_of_range_or_unreadable_exits_1_with_one_line_naming_it(string variable, string value, string named)
    {
        await using var process = SiloProcess.Start(new Dictionary<string, string> { [variable] = value }, "run");

        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(30)), process.Output);
        Assert.Equal(1, process.ExitCode);
        Assert.Contains(process.Errors, line => line.StartsWith("error: ", StringComparison.Ordinal) && line.Contains(named, StringComparison.Ordinal));
        Assert.DoesNotContain(process.Errors, line => line.Contains("Unhandled exception", StringComparison.Ordinal));
    }

    private static TcpListener Hold(out int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        port = ((IPEndPoint)listener.LocalEndpoint).Port;
        return listener;
    }
}
