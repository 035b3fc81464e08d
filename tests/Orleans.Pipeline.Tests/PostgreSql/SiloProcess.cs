using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>The silo executable (<c>silo/</c>) or the tools run as a separate process, its output captured line by line.</summary>
public sealed class SiloProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private SiloProcess(Process process, string healthUrl)
    {
        _process = process;
        HealthUrl = healthUrl;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) _output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _output.Enqueue("stderr: " + e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>Everything the process printed so far.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Lines the process printed on stderr.</summary>
    public IEnumerable<string> Errors => _output.Where(l => l.StartsWith("stderr: ", StringComparison.Ordinal)).Select(l => l[8..]);

    public int ExitCode => _process.ExitCode;

    public bool HasExited => _process.HasExited;

    /// <summary>Where the process serves its health endpoints (<c>Pipeline__Health__Url</c>: a free loopback port unless the environment sets one).</summary>
    public string HealthUrl { get; }

    /// <summary>The built silo assembly beside this test assembly's configuration (the test project builds it first).</summary>
    public static string Executable => Built(Path.Combine("silo", "bin"), "orleans-pipeline-silo.dll");

    /// <summary>The built tools (bench, chaos, rehearse, the demo on a throwaway server): <c>tests/Orleans.Pipeline.Tools</c>.</summary>
    public static string Tools => Built(Path.Combine("tests", "Orleans.Pipeline.Tools", "bin"), "orleans-pipeline-tools.dll");

    private static string Built(string bin, string assembly)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = directory.Parent!.Name; // …/bin/<configuration>/<tfm>
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Orleans.Pipeline.sln"))) directory = directory.Parent;
        var path = Path.Combine(directory!.FullName, bin, configuration, "net10.0", assembly);
        return File.Exists(path) ? path : throw new FileNotFoundException($"{assembly} is not built at {path}");
    }

    /// <summary>A tool command (<see cref="Tools"/>) as a separate process.</summary>
    public static SiloProcess StartTool(IReadOnlyDictionary<string, string> environment, params string[] arguments) => Start(Tools, environment, arguments);

    public static SiloProcess Start(IReadOnlyDictionary<string, string> environment, params string[] arguments) => Start(Executable, environment, arguments);

    private static SiloProcess Start(string assembly, IReadOnlyDictionary<string, string> environment, string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory.CreateTempSubdirectory("orleans-pipeline-silo-").FullName,
        };
        start.ArgumentList.Add(assembly);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        // Every silo process serves health; on its own port, so that processes side by side do not collide.
        start.Environment["Pipeline__Health__Url"] = $"http://127.0.0.1:{FreePorts.Next()}";
        foreach (var (key, value) in environment) start.Environment[key] = value;
        return new SiloProcess(Process.Start(start) ?? throw new InvalidOperationException("could not start the silo"), start.Environment["Pipeline__Health__Url"]!);
    }

    /// <summary>Waits for a line containing <paramref name="text"/>; fails with the output when the process exits or time runs out.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!_output.Any(l => l.Contains(text, StringComparison.Ordinal)))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
                throw new TimeoutException($"the silo did not print '{text}' (exited: {_process.HasExited}); its output:\n{Output}");
            await Task.Delay(100);
        }
    }

    /// <summary>Waits for the process to exit; false when it is still running after <paramref name="timeout"/>.</summary>
    public Task<bool> WaitForExitAsync(TimeSpan timeout) => _process.WaitForExitAsync(timeout);

    /// <summary>SIGTERM, as a kubelet stops a container: the process shuts down gracefully.</summary>
    public void Terminate()
    {
        using var signal = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]) ?? throw new InvalidOperationException("could not run kill");
        signal.WaitForExit();
    }

    /// <summary>SIGKILL: no shutdown, no flush, leases left as they are.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>Environment variables that define <paramref name="pipelines"/> as the silo's configuration would.</summary>
    public static Dictionary<string, string> PipelineEnvironment(IEnumerable<PipelineDefinition> pipelines)
    {
        static string Time(long ms) => TimeSpan.FromMilliseconds(ms).ToString("c", CultureInfo.InvariantCulture);
        var env = new Dictionary<string, string>();
        foreach (var p in pipelines)
        {
            var prefix = $"Pipeline__Pipelines__{p.Name}__";
            var w = p.Windowing;
            env[prefix + "Window__Kind"] = w.Window.Kind.ToString();
            if (w.Window.Kind != Windowing.WindowKind.Session) env[prefix + "Window__Size"] = Time(w.Window.SizeMs);
            if (w.Window.Kind == Windowing.WindowKind.Hopping) env[prefix + "Window__Slide"] = Time(w.Window.SlideMs);
            if (w.Window.Kind == Windowing.WindowKind.Session) env[prefix + "Window__Gap"] = Time(w.Window.GapMs);
            env[prefix + "MaxOutOfOrderness"] = Time(w.MaxOutOfOrdernessMs);
            env[prefix + "AllowedLateness"] = Time(w.AllowedLatenessMs);
            env[prefix + "Partitions"] = p.Partitions.ToString(CultureInfo.InvariantCulture);
            for (var i = 0; i < w.Aggregations.Length; i++)
            {
                var a = w.Aggregations[i];
                env[$"{prefix}Aggregations__{i}__Function"] = a.Function;
                if (a.Field is not null) env[$"{prefix}Aggregations__{i}__Field"] = a.Field;
                if (a.Name is not null) env[$"{prefix}Aggregations__{i}__Name"] = a.Name;
                for (var l = 0; l < (a.Arguments?.Length ?? 0); l++)
                    env[$"{prefix}Aggregations__{i}__Levels__{l}"] = a.Arguments![l].ToString("R", CultureInfo.InvariantCulture);
            }
        }

        return env;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
