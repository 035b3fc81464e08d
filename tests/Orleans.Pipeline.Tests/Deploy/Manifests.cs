using System.ComponentModel;
using System.Diagnostics;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.Deploy;

/// <summary>The deployment artefacts under <c>deploy/</c>: overlays rendered with <c>kubectl kustomize</c>, and what the silo offers them.</summary>
public static partial class Manifests
{
    public static readonly string[] Overlays = ["dev", "prod"];

    public static string Root
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Orleans.Pipeline.sln"))) directory = directory.Parent;
            return directory?.FullName ?? throw new DirectoryNotFoundException("the repository root (Orleans.Pipeline.sln) is not above the test assembly");
        }
    }

    public static string Kustomize(string overlay) => Path.Combine(Root, "deploy", "k8s", overlay == "base" ? "base" : Path.Combine("overlays", overlay));

    /// <summary>The YAML of <c>kubectl kustomize</c> for an overlay (or "base"); fails with a clear message when kubectl is missing.</summary>
    public static async Task<string> RenderAsync(string overlay)
    {
        var start = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("kustomize");
        start.ArgumentList.Add(Kustomize(overlay));
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("could not start kubectl");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException("kubectl is not on PATH: the deployment tests render deploy/k8s with `kubectl kustomize` (install kubectl: https://kubernetes.io/docs/tasks/tools/)", e);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            if (process.ExitCode != 0) throw new InvalidOperationException($"kubectl kustomize {overlay} failed ({process.ExitCode}): {await error}");
            return await output;
        }
    }

    /// <summary>The rendered objects, typed (Deployment, Service, Job, …).</summary>
    public static async Task<List<object>> LoadAsync(string overlay) => KubernetesYaml.LoadAllFromString(await RenderAsync(overlay));

    public static V1Deployment Silo(IEnumerable<object> objects) => objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "orleans-pipeline-silo");

    public static V1Container Container(V1Deployment deployment) => deployment.Spec.Template.Spec.Containers.Single(c => c.Name == "silo");

    /// <summary>The value of an environment variable set with a plain value.</summary>
    public static string Env(V1Container container, string name) =>
        container.Env.SingleOrDefault(e => e.Name == name)?.Value ?? throw new InvalidOperationException($"container {container.Name} does not set {name}");

    public static int PortOfUrl(string url) => new Uri(url.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal)).Port;

    /// <summary>A container port by name or number, as probes and Services name it.</summary>
    public static int ContainerPort(V1Container container, string port) =>
        int.TryParse(port, out var number) ? number
        : container.Ports.SingleOrDefault(p => p.Name == port)?.ContainerPort ?? throw new InvalidOperationException($"container {container.Name} has no port named '{port}'");

    private static IReadOnlyList<string>? _commands;

    /// <summary>
    /// The silo's commands, as the silo itself lists them: it is asked for a command it does not have and names the
    /// ones it has (<c>error: unknown command 'x' (commands: run, gateway, …)</c>).
    /// </summary>
    public static async Task<IReadOnlyList<string>> SiloCommandsAsync()
    {
        if (_commands is not null) return _commands;
        await using var silo = SiloProcess.Start(new Dictionary<string, string>(), "no-such-command");
        if (!await silo.WaitForExitAsync(TimeSpan.FromSeconds(60))) throw new TimeoutException("the silo did not answer an unknown command");
        var match = CommandList().Match(silo.Output);
        if (!match.Success) throw new InvalidOperationException($"the silo did not list its commands:\n{silo.Output}");
        return _commands = match.Groups[1].Value.Split(", ");
    }

    [GeneratedRegex(@"\(commands: ([^)]*)\)")]
    private static partial Regex CommandList();
}
