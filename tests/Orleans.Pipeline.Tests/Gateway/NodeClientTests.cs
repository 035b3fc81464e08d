using System.Diagnostics;
using System.Text.Json;
using Orleans.Pipeline.Tests.PostgreSql;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>
/// A client in another language: a Node.js script on the npm packages <c>@grpc/grpc-js</c> and
/// <c>@grpc/proto-loader</c>, reading the repository's .proto, publishes, queries and subscribes against a running
/// silo (the executable, embedded mode, gateway on a loopback port).
/// </summary>
public sealed class NodeClientTests
{
    [Fact]
    public async Task A_node_client_publishes_queries_and_subscribes_through_the_gateway()
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Gateway", "node");
        var work = Directory.CreateTempSubdirectory("orleans-pipeline-node-").FullName;
        foreach (var file in new[] { "client.mjs", "package.json" }) File.Copy(Path.Combine(script, file), Path.Combine(work, file));
        var install = await RunAsync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], work, TimeSpan.FromMinutes(3));
        Assert.True(install.ExitCode == 0, $"npm install failed (Node.js and npm are needed, with access to the npm registry):\n{install.Output}");

        var port = FreePorts.Next();
        var environment = SiloProcess.PipelineEnvironment(PipelineCluster.Pipelines);
        environment["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{port}";
        environment["Pipeline__SiloPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture);
        environment["Pipeline__GatewayPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture);
        environment["Pipeline__DatabasePath"] = Path.Combine(work, "pipeline.db");
        await using var silo = SiloProcess.Start(environment);
        await silo.WaitForOutputAsync("silo started", TimeSpan.FromSeconds(60));

        var protoRoot = Path.Combine(AppContext.BaseDirectory, "Gateway", "protos");
        var run = await RunAsync("node", ["client.mjs", $"127.0.0.1:{port}", protoRoot, GoogleApiProtos()], work, TimeSpan.FromMinutes(1));
        Assert.True(run.ExitCode == 0, $"the node client failed:\n{run.Output}\nsilo:\n{silo.Output}");

        using var output = JsonDocument.Parse(run.Output.Trim().Split('\n')[^1]);
        var root = output.RootElement;
        // demo comes from the silo's appsettings.json, the others from the environment.
        Assert.Equal(["demo", "hopping", "session", "tumbling"], root.GetProperty("pipelines").EnumerateArray().Select(p => p.GetString()!).Order());
        Assert.Equal(3, root.GetProperty("invalid").GetProperty("code").GetInt32()); // INVALID_ARGUMENT
        Assert.Contains("field 'b' is missing", root.GetProperty("invalid").GetProperty("details").GetString(), StringComparison.Ordinal);
        var finals = root.GetProperty("finals");
        foreach (var window in new[] { "0-10", "10-20", "20-30" })
        {
            Assert.Equal(10, finals.GetProperty(window).GetProperty("count").GetInt32());
            Assert.Equal(10.0, finals.GetProperty(window).GetProperty("sum_a").GetDouble());
        }

        var accepted = root.GetProperty("accepted").GetInt32();
        var query = root.GetProperty("query");
        Assert.Equal(accepted, query.GetProperty("appliedEvents").GetInt32() + query.GetProperty("lateEvents").GetInt32());
    }

    /// <summary>google/api/*.proto as the Google.Api.CommonProtos package ships them (restored with this solution).</summary>
    private static string GoogleApiProtos()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var versions = Directory.GetDirectories(Path.Combine(packages, "google.api.commonprotos"));
        return Path.Combine(versions.OrderByDescending(v => Version.Parse(Path.GetFileName(v))).First(), "content", "protos");
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] arguments, string directory, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout}\n{await output}\n{await error}");
        }

        return (process.ExitCode, (await output) + (await error));
    }
}
