using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Orleans.Pipeline.Testing;

/// <summary>A .NET executable (<c>dotnet ASSEMBLY ARGUMENTS</c>) run as a child process, its output kept; restartable.</summary>
public sealed class ChildProcess(string assembly, string[] arguments, Dictionary<string, string> environment)
{
    private readonly StringBuilder _output = new();
    private Process? _process;

    public string Name { get; init; } = "producer";

    public Dictionary<string, string> Environment { get; } = environment;

    /// <summary>Whether the process gets only <see cref="Environment"/> of the pipeline's settings, none of this process's (a pod's environment is its manifest's).</summary>
    public bool Isolated { get; init; }

    public bool HasExited => _process?.HasExited ?? true;

    public int ExitCode => _process?.ExitCode ?? -1;

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public void Start()
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(assembly);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        if (Isolated)
        {
            foreach (var inherited in start.Environment.Keys.Where(k => k.StartsWith("Pipeline__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("Orleans__", StringComparison.OrdinalIgnoreCase)
                || k.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("POD_", StringComparison.Ordinal) || k.StartsWith("ORLEANS_", StringComparison.Ordinal)).ToList())
                start.Environment.Remove(inherited);
        }

        foreach (var (name, value) in Environment) start.Environment[name] = value;
        lock (_output) _output.Clear();
        _process = Process.Start(start) ?? throw new InvalidOperationException("could not start a child process");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    public async Task WaitForAsync(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (HasExited || clock.Elapsed > timeout)
                throw new InvalidOperationException($"process {Name} did not print '{text}' (exited: {HasExited}):\n{Output}");
            await Task.Delay(100);
        }
    }

    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
    }

    /// <summary>SIGTERM, without waiting.</summary>
    public void Terminate()
    {
        if (_process is not { HasExited: false } process) return;
        using var signal = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]);
        signal?.WaitForExit();
    }

    public async Task StopGracefullyAsync(TimeSpan timeout)
    {
        if (_process is not { HasExited: false } process) return;
        using (var signal = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])) await signal.WaitForExitAsync();
        if (!await WaitForExitAsync(timeout)) Kill();
    }

    public Task<bool> WaitForExitAsync(TimeSpan timeout) => _process is null ? Task.FromResult(true) : _process.WaitForExitAsync(timeout);
}

/// <summary>Waiting for processes with a bound.</summary>
public static class ProcessWaits
{
    /// <summary>Waits for the process to exit; false when it is still running after <paramref name="timeout"/>.</summary>
    public static async Task<bool> WaitForExitAsync(this Process process, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(process);
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
