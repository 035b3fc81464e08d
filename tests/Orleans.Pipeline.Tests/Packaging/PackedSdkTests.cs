using System.Diagnostics;
using System.Globalization;
using System.Text;
using Orleans.Pipeline.Tests.Gateway;
using Xunit.Abstractions;

namespace Orleans.Pipeline.Tests.Packaging;

/// <summary>Packs, builds and runs on its own: it needs the machine's cores, and timing-sensitive tests should not share them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PackagingCollection
{
    public const string Name = "packaging";
}

/// <summary>
/// The gateway client as a .NET user gets it: <c>dotnet pack</c> of <c>Orleans.Pipeline.Client.Grpc</c> and the
/// package it depends on into a folder feed, a console project elsewhere that references the package by version,
/// built and run against a real gateway on a loopback port.
/// </summary>
/// <remarks>
/// Nothing of the run stays behind: the packages get a version of their own (<c>0.1.0-test.…</c>), the builds write
/// under a temporary folder (<c>--artifacts-path</c>; the repository's bin/ and obj/ are not touched), and the console
/// project restores into a packages folder of its own, with the machine's global packages folder as a read-only
/// fallback (so third-party packages come from where the normal build put them, without downloading them again) and
/// the machine's package sources plus the feed: the test packages never enter the global packages folder, where they
/// could shadow a later build.
/// </remarks>
[Collection(PackagingCollection.Name)]
public sealed class PackedSdkTests(ITestOutputHelper output)
{
    private const int Events = 5;

    [Fact]
    public async Task The_packed_gateway_client_publishes_through_a_gateway_from_a_console_app_that_references_it_by_version()
    {
        var started = Stopwatch.StartNew();
        var repository = RepositoryRoot();
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
        var version = string.Create(CultureInfo.InvariantCulture, $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}");
        var work = Directory.CreateTempSubdirectory("orleans-pipeline-packed-sdk-");
        try
        {
            var feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;

            // 1. Pack the client and the contract package it depends on (one solution filter, one build).
            var filter = Path.Combine(work.FullName, "grpc-client.slnf");
            await File.WriteAllTextAsync(filter, $$"""
                { "solution": { "path": "{{Json(Path.Combine(repository, "Orleans.Pipeline.sln"))}}", "projects": [
                  "src\\Orleans.Pipeline.Gateway.Contracts\\Orleans.Pipeline.Gateway.Contracts.csproj",
                  "client\\Orleans.Pipeline.Client.Grpc\\Orleans.Pipeline.Client.Grpc.csproj" ] } }
                """);
            Log(started, $"packing {version} into {feed}");
            var pack = await DotnetAsync(repository, TimeSpan.FromMinutes(4), null,
                "pack", filter, "-c", configuration, "-o", feed, "--artifacts-path", Path.Combine(work.FullName, "artifacts"), $"-p:Version={version}");
            Assert.True(pack.ExitCode == 0, $"dotnet pack failed:\n{pack.Output}");
            var packages = Directory.GetFiles(feed, "*.nupkg").Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToArray();
            Assert.Equal(new[] { $"Orleans.Pipeline.Client.Grpc.{version}.nupkg", $"Orleans.Pipeline.Gateway.Contracts.{version}.nupkg" }, packages);
            Log(started, $"packed: {string.Join(", ", packages)}");

            // 2. A console project that knows the client only as a package.
            var app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            var machinePackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } set
                ? set
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            await File.WriteAllTextAsync(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <config>
                    <add key="globalPackagesFolder" value="{Xml(Path.Combine(work.FullName, "packages"))}" />
                  </config>
                  <packageSources>
                    <!-- Added to the machine's own sources, which this file does not clear. -->
                    <add key="orleans-pipeline-packed-sdk-test" value="{Xml(feed)}" />
                  </packageSources>
                  <fallbackPackageFolders>
                    <clear />
                    <add key="machine" value="{Xml(machinePackages)}" />
                  </fallbackPackageFolders>
                </configuration>
                """);
            await File.WriteAllTextAsync(Path.Combine(app, "packed-client.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                    <UseAppHost>false</UseAppHost>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Orleans.Pipeline.Client.Grpc" Version="[{version}]" />
                  </ItemGroup>
                </Project>
                """);
            await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), Program);
            Log(started, "building the console project against the feed");
            var bin = Path.Combine(app, "out");
            // NUGET_PACKAGES would override the packages folder nuget.config gives.
            var build = await DotnetAsync(app, TimeSpan.FromMinutes(3), ["NUGET_PACKAGES"], "build", "-c", "Release", "-o", bin);
            Assert.True(build.ExitCode == 0, $"the console project did not build against the packed client:\n{build.Output}");
            var assemblies = Directory.GetFiles(bin, "*.dll").Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToArray();
            Log(started, $"built: {string.Join(", ", assemblies)}");
            Assert.Contains("Orleans.Pipeline.Client.Grpc.dll", assemblies);
            // The gateway client brings no Orleans runtime and no database driver along.
            Assert.DoesNotContain(assemblies, a => a.StartsWith("Orleans.", StringComparison.Ordinal) && !a.StartsWith("Orleans.Pipeline.", StringComparison.Ordinal));
            Assert.DoesNotContain(assemblies, a => a.StartsWith("Npgsql", StringComparison.Ordinal) || a.StartsWith("Microsoft.Data.", StringComparison.Ordinal));
            Assert.DoesNotContain(assemblies, a => a is "Orleans.Pipeline.Abstractions.dll" or "Orleans.Pipeline.Client.dll");

            // 3. Run it against a real gateway (embedded cluster in this process, gateway on a loopback port).
            await using var host = await GatewayHost.StartAsync(realPort: true);
            Log(started, $"gateway at {host.Address}; running the console program");
            var run = await DotnetAsync(app, TimeSpan.FromMinutes(1), null, Path.Combine(bin, "packed-client.dll"), host.Address!.ToString(), "packed-key");
            Log(started, $"the program exited with {run.ExitCode}:\n{run.Output}");
            Assert.True(run.ExitCode == 0, $"the console program failed:\n{run.Output}");
            var lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Contains(lines, l => l.StartsWith($"client: {version}+", StringComparison.Ordinal) || l == $"client: {version}");
            Assert.Contains("pipelines: hopping,session,tumbling", lines);
            Assert.Contains($"accepted: {Events}", lines);
            Assert.Contains("invalid: InvalidArgument", lines);
            Assert.Contains($"applied: {Events}", lines);

            // The cluster has them: applied once, in one window.
            var windows = await host.Pipeline.QueryAsync("tumbling", "packed-key");
            Assert.Equal(Events, windows.AppliedEvents);
            Assert.Equal(0, windows.DuplicateBatches);
            var window = Assert.Single(windows.Open);
            Assert.Equal((1_000, 1_010), (window.Start, window.End));
            Assert.Equal(Events, window.EventCount);
            Log(started, "done");
        }
        finally
        {
            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException e)
            {
                output.WriteLine($"could not remove {work.FullName}: {e.Message}");
            }
        }
    }

    /// <summary>The console program: connects, lists, publishes, is refused an invalid event, waits until applied.</summary>
    private const string Program = """
        using System.Reflection;
        using Grpc.Core;
        using Orleans.Pipeline.Client;

        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: packed-client GATEWAY_URL KEY");
            return 2;
        }

        var key = args[1];
        var version = typeof(PipelineGatewayClient).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        Console.WriteLine($"client: {version}");
        using var gateway = new PipelineGatewayClient(new Uri(args[0]));
        var pipelines = await gateway.ListPipelinesAsync();
        Console.WriteLine($"pipelines: {string.Join(",", pipelines.Select(p => p.Name).Order(StringComparer.Ordinal))}");

        var events = Enumerable.Range(0, 5).Select(i => new GatewayEvent(key, 1_000 + i, new Dictionary<string, double> { ["a"] = i + 1, ["b"] = 1 }));
        var response = await gateway.PublishAsync("tumbling", events, waitApplied: true);
        Console.WriteLine($"accepted: {response.Accepted}");

        try
        {
            await gateway.PublishAsync("tumbling", [GatewayEvent.Create(key, DateTimeOffset.FromUnixTimeMilliseconds(1_005), ("a", 1))]);
            Console.WriteLine("invalid: accepted");
            return 1;
        }
        catch (RpcException e)
        {
            Console.WriteLine($"invalid: {e.StatusCode}");
        }

        // Published waiting for the events to be applied: the query sees them at once.
        var applied = (await gateway.QueryAsync("tumbling", key)).AppliedEvents;
        Console.WriteLine($"applied: {applied}");
        return applied == 5 ? 0 : 1;
        """;

    private void Log(Stopwatch started, string line) => output.WriteLine($"[{started.Elapsed.TotalSeconds,5:F1}s] {line}");

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Orleans.Pipeline.sln"))) directory = directory.Parent;
        return directory?.FullName ?? throw new DirectoryNotFoundException($"no Orleans.Pipeline.sln above {AppContext.BaseDirectory}");
    }

    private static string Json(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    private static string Xml(string value) => System.Security.SecurityElement.Escape(value);

    /// <summary>
    /// Runs <c>dotnet</c> with the arguments in <paramref name="directory"/>, output captured. The variables the test
    /// host inherited from the CLI that started it (MSBuild's) are removed, so that the child resolves its SDK and
    /// MSBuild as a shell would; no build server stays behind.
    /// </summary>
    private static async Task<(int ExitCode, string Output)> DotnetAsync(string directory, TimeSpan timeout, string[]? unset, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        if (arguments[0] is "pack" or "build") start.ArgumentList.Add("--disable-build-servers");
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList()) start.Environment.Remove(name);
        foreach (var name in unset ?? []) start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        var text = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (text) text.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (text) text.AppendLine("stderr: " + e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            lock (text) return (-1, $"timed out after {timeout}: dotnet {string.Join(' ', arguments)}\n{text}");
        }

        // The asynchronous readers have seen the end of both streams once WaitForExit (without a timeout) returns.
        process.WaitForExit();
        lock (text) return (process.ExitCode, text.ToString());
    }
}
