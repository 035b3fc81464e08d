using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using k8s;
using k8s.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Orleans.Pipeline.CommandLine;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Testing;
using Orleans.Runtime;

namespace Orleans.Pipeline.Tools;

internal sealed record RehearseOptions(string Overlay, double Minutes, int Keys, int Rate, int Seed, TimeSpan? DrainDelay)
{
    public const string Usage = "usage: rehearse [--overlay DIR (deploy/k8s/overlays/dev)] [--minutes N (3)] [--keys K (500)] [--rate events/s (1500)] [--seed S (1)] [--drain-delay hh:mm:ss (the manifest's)]";

    public static RehearseOptions Parse(string[] args)
    {
        var options = new RehearseOptions(Path.Combine("deploy", "k8s", "overlays", "dev"), 3, 500, 1_500, 1, null);
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Length) throw new ArgumentException($"option {name} needs a value");
            var value = args[++i];
            options = name switch
            {
                "--overlay" => options with { Overlay = value },
                "--minutes" => options with { Minutes = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m is > 0 and <= 60 ? m : throw new ArgumentException($"--minutes: '{value}' is not a number of minutes in (0, 60]") },
                "--keys" => options with { Keys = Whole(name, value) },
                "--rate" => options with { Rate = Whole(name, value) },
                "--seed" => options with { Seed = Whole(name, value) },
                "--drain-delay" => options with { DrainDelay = TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var d) && d >= TimeSpan.Zero ? d : throw new ArgumentException($"--drain-delay: '{value}' is not a duration") },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        return options;
    }

    private static int Whole(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"{name}: '{value}' is not a positive whole number");
}

/// <summary>
/// Rehearses a kustomize overlay on this machine, without Kubernetes: renders it with <c>kubectl kustomize</c>, takes
/// the silo Deployment's environment, command, ports and probes and the migration Job's, and plays the cluster's part
/// with processes. A throwaway PostgreSQL stands for the Secret's database; the Job's command runs once; each pod is
/// a silo process with its own loopback address (127.0.0.x) as its pod IP, the downward API and the ConfigMap
/// (written to a directory that stands for its mount) filled in; a prober per pod polls the startup, readiness and
/// liveness probes as the kubelet would; a TCP proxy stands for the gateway Service, sending each new connection to
/// a ready pod. While the chaos command's producer publishes through that Service, the cluster scales 3 → 5 → 2 pods
/// and is restarted pod by pod (a new pod first, then SIGTERM to an old one, as maxSurge 1 and maxUnavailable 0 do);
/// then the results table is compared with the windowing engine, as the chaos command does.
/// </summary>
internal static class Rehearse
{
    public static async Task<int> RunAsync(RehearseOptions options)
    {
        var clock = Stopwatch.StartNew();
        LiveStatus? status = null;
        void Say(string line)
        {
            var text = $"{clock.Elapsed.TotalSeconds,6:F1} s  {line}";
            if (status is not null) status.Log(text);
            else Console.WriteLine(text);
        }

        var objects = KubernetesYaml.LoadAllFromString(await KustomizeAsync(options.Overlay));
        var deployment = objects.OfType<V1Deployment>().Single(d => d.Spec.Template.Spec.Containers.Any(c => c.Args?.FirstOrDefault() == "run"));
        var silo = deployment.Spec.Template.Spec.Containers.Single(c => c.Args?.FirstOrDefault() == "run");
        var job = objects.OfType<V1Job>().Single().Spec.Template.Spec.Containers.Single();
        var configMaps = objects.OfType<V1ConfigMap>().ToDictionary(c => c.Metadata.Name);
        var service = objects.OfType<V1Service>().Single(s => s.Spec.Selector.All(l => deployment.Spec.Template.Metadata.Labels.TryGetValue(l.Key, out var v) && v == l.Value));
        var grace = TimeSpan.FromSeconds(deployment.Spec.Template.Spec.TerminationGracePeriodSeconds ?? 30);
        var grpcPort = Port(silo, service.Spec.Ports.Single().TargetPort.Value);
        Say($"rendered {options.Overlay}: {objects.Count} objects; silo {string.Join(' ', silo.Args)} with {silo.Env.Count} variables, ports {string.Join(", ", silo.Ports.Select(p => $"{p.Name} {p.ContainerPort}"))}; " +
            $"probes startup {silo.StartupProbe.HttpGet.Path}, readiness {silo.ReadinessProbe.HttpGet.Path}, liveness {silo.LivenessProbe.HttpGet.Path}; job {string.Join(' ', job.Args)}; grace period {grace.TotalSeconds:0} s");

        await using var postgres = await LocalPostgres.StartAsync();
        var database = await postgres.CreateDatabaseAsync("rehearsal");
        var direct = new NpgsqlConnectionStringBuilder(database) { Pooling = false }.ConnectionString;
        var work = Directory.CreateTempSubdirectory("orleans-pipeline-rehearsal-").FullName;
        var secrets = new Dictionary<(string, string), string> { [("orleans-pipeline-postgres", "connection-string")] = database };
        var mounts = new Dictionary<string, string>();
        foreach (var mount in silo.VolumeMounts ?? [])
        {
            var volume = deployment.Spec.Template.Spec.Volumes.Single(v => v.Name == mount.Name);
            var directory = Path.Combine(work, mount.Name);
            Directory.CreateDirectory(directory);
            if (volume.ConfigMap is { } map)
                foreach (var (file, content) in configMaps[map.Name].Data) await File.WriteAllTextAsync(Path.Combine(directory, file), content);
            else if (volume.Secret is not null)
                throw new InvalidOperationException($"the overlay mounts the Secret '{volume.Secret.SecretName}' (TLS): rehearse an overlay without TLS material, such as dev");
            mounts[mount.MountPath] = directory;
        }

        var pods = new List<Pod>();
        var retired = new List<Pod>();
        var podNumber = 0;
        Pod NewPod()
        {
            var name = $"{deployment.Metadata.Name}-{podNumber}";
            var ip = $"127.0.0.{10 + podNumber++}";
            var environment = Environment(silo, deployment, name, ip, secrets, mounts);
            // No API server here: Kubernetes hosting (which watches pods) stays off; everything else is the manifest's.
            environment["Pipeline__Kubernetes__Enabled"] = "false";
            if (options.DrainDelay is { } drain) environment["Pipeline__Health__DrainDelay"] = drain.ToString("c", CultureInfo.InvariantCulture);
            // The rehearsal's own pipeline beside the ConfigMap's: the chaos command's, so that its check applies.
            foreach (var (key, value) in Chaos.PipelineEnvironment()) environment[key] = value;
            return new Pod(name, ip, silo, new ChildProcess(Executables.Silo, [.. silo.Args], environment) { Name = name, Isolated = true });
        }

        var events = (int)(options.Rate * options.Minutes * 60);
        using var proxy = new ServiceProxy(() => pods.Where(p => p.Ready).Select(p => new IPEndPoint(IPAddress.Parse(p.Ip), grpcPort)).ToList());
        ChildProcess? producer = null;
        try
        {
            // The migration Job, then the Deployment's three pods.
            var migrate = new ChildProcess(Executables.Silo, [.. job.Args], Environment(job, deployment, "migrate", "127.0.0.9", secrets, mounts)) { Name = "migrate", Isolated = true };
            migrate.Start();
            if (!await migrate.WaitForExitAsync(TimeSpan.FromMinutes(2)) || migrate.ExitCode != 0)
                throw new InvalidOperationException($"the migration Job failed (exit {migrate.ExitCode}):\n{migrate.Output}");
            Say($"job {string.Join(' ', job.Args)}: {migrate.Output.Trim().Split('\n')[^1].Trim()}"); // its summary (the steps are printed before it)

            async Task ScaleUpAsync(int count, string why)
            {
                var added = Enumerable.Range(0, count).Select(_ => NewPod()).ToList();
                foreach (var pod in added) EnsurePortsFree(pod.Ip, silo);
                pods.AddRange(added);
                foreach (var pod in added) pod.Start();
                await Task.WhenAll(added.Select(p => p.WaitReadyAsync(TimeSpan.FromMinutes(3))));
                foreach (var pod in added) Say($"{why}: pod {pod.Name} ({pod.Ip}) ready {pod.ReadyAfter.TotalSeconds:F1} s after it started");
            }

            async Task StopAsync(IReadOnlyList<Pod> leaving, string why)
            {
                foreach (var pod in leaving)
                {
                    pods.Remove(pod);
                    retired.Add(pod);
                }

                Say($"{why}: SIGTERM {string.Join(", ", leaving.Select(p => p.Name))}");
                var stopped = await Task.WhenAll(leaving.Select(p => p.TerminateAsync(grace)));
                for (var i = 0; i < leaving.Count; i++)
                    Say($"{why}: pod {leaving[i].Name} unready {leaving[i].UnreadyAfterTerm?.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) ?? "—"} s after SIGTERM, exited after {stopped[i].TotalSeconds:F1} s (code {leaving[i].ExitCode})");
            }

            await ScaleUpAsync(3, "deploy");
            await using var observer = await Observer.ConnectAsync(database, deployment.Spec.Template.Metadata.Labels);
            var progress = Path.Combine(work, "producer.progress");
            producer = new ChildProcess(Executables.Tools, ["chaos-produce", $"http://127.0.0.1:{proxy.Port}", (options.Seed + 1).ToString(CultureInfo.InvariantCulture), options.Keys.ToString(CultureInfo.InvariantCulture),
                events.ToString(CultureInfo.InvariantCulture), options.Rate.ToString(CultureInfo.InvariantCulture), progress, "keep"], new Dictionary<string, string>()) { Name = "producer" };
            producer.Start();
            status = LiveStatus.Start("rehearse", () =>
            [
                ("producer", $"{Chaos.ReadProgress(progress)} requests acknowledged"),
                ("pods", $"{pods.Count}: {string.Join(", ", pods.Select(p => p.Name))}"),
            ]);
            Say($"publishing {events:N0} events over {options.Keys:N0} keys at {options.Rate:N0}/s through the gateway Service (127.0.0.1:{proxy.Port} → ready pods' port {grpcPort})");
            var step = TimeSpan.FromMinutes(options.Minutes) / 5;

            await Task.Delay(step);
            await ScaleUpAsync(2, "scale 3 → 5");
            // Watched while the rehearsal goes on: a new silo gets grains as they are placed (see WatchLoadAsync).
            var loads = pods.Skip(3).Select(pod => (pod.Name, Task: observer.WatchLoadAsync(pod, TimeSpan.FromMinutes(3), Say))).ToList();

            await Task.Delay(step);
            await StopAsync(pods.Take(3).ToList(), "scale 5 → 2");

            await Task.Delay(step);
            foreach (var old in pods.ToList())
            {
                await ScaleUpAsync(1, "rolling restart");
                await StopAsync([old], "rolling restart");
            }

            Say($"{pods.Count} pods: {string.Join(", ", pods.Select(p => p.Name))}; waiting for the producer ({Chaos.ReadProgress(progress)} requests acknowledged so far) …");
            if (!await producer.WaitForExitAsync(TimeSpan.FromMinutes(20)) || producer.ExitCode != 0)
                throw new InvalidOperationException($"the producer did not finish cleanly (exit {producer.ExitCode}):\n{producer.Output}");

            var firstLoads = new List<double?>();
            foreach (var (_, task) in loads) firstLoads.Add(await task);

            await status.DisposeAsync();
            status = null;
            var expected = Chaos.Reference(Chaos.Workload("gw", options.Seed + 1, options.Keys, events));
            Say($"all {events:N0} events acknowledged; comparing {expected.Count:N0} closed windows with the results table …");
            var mismatches = await Chaos.CompareSettledAsync(direct, expected);
            var all = pods.Concat(retired).ToList();
            var liveFailures = all.Sum(p => p.LivenessFailures);
            var flaps = all.Sum(p => p.ReadinessLosses);
            Console.WriteLine();
            Console.WriteLine("| pods started | scale steps | rolling restart | events | windows compared | mismatches | liveness failures | readiness lost while running | pod start → ready (p50 / worst) | new pods (3 → 5): ready → first pipeline grain |");
            Console.WriteLine("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
            var ready = all.Select(p => p.ReadyAfter.TotalSeconds).Order().ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {all.Count} | 3 → 5 → 2 | 2 pods, one at a time | {events:N0} | {expected.Count:N0} | {mismatches.Count} | {liveFailures} | {flaps} | {ready[ready.Count / 2]:F1} s / {ready[^1]:F1} s | {string.Join(", ", firstLoads.Select(Seconds))} |"));
            foreach (var m in mismatches.Take(20)) Console.WriteLine($"mismatch: {m}");
            foreach (var line in await Chaos.DeadLettersAsync(direct)) Console.WriteLine($"dead letters: {line}");
            Console.WriteLine($"mismatches {mismatches.Count}");
            return mismatches.Count == 0 && liveFailures == 0 ? 0 : 1;
        }
        finally
        {
            producer?.Kill();
            foreach (var pod in pods.Concat(retired)) pod.Kill();
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Every pod uses the manifests' ports on its own address; a process listening on all interfaces on one of them is in the way.</summary>
    private static void EnsurePortsFree(string ip, V1Container container)
    {
        foreach (var port in container.Ports)
        {
            var listener = new TcpListener(IPAddress.Parse(ip), port.ContainerPort);
            try
            {
                listener.Start();
            }
            catch (SocketException e)
            {
                throw new InvalidOperationException($"port {port.ContainerPort} ({port.Name}) on {ip} is taken: another process on this machine listens on it (on all interfaces?); the rehearsal's pods need the manifests' ports ({e.Message})");
            }
            finally
            {
                listener.Stop();
            }
        }
    }

    private static string Seconds(double? seconds) => seconds is { } s ? string.Create(CultureInfo.InvariantCulture, $"{s:F1} s") : "—";

    private static async Task<string> KustomizeAsync(string overlay)
    {
        var start = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("kustomize");
        start.ArgumentList.Add(overlay);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("kubectl is not on PATH; the rehearsal renders the overlay with `kubectl kustomize`", e);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return process.ExitCode == 0 ? await output : throw new InvalidOperationException($"kubectl kustomize {overlay}: {await error}");
        }
    }

    private static int Port(V1Container container, string port) =>
        int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : container.Ports.Single(p => p.Name == port).ContainerPort;

    /// <summary>
    /// A container's environment as the kubelet gives it to a pod: plain values with earlier variables expanded, the
    /// downward API, Secrets (here: the throwaway database), paths under mounts mapped to their stand-in directories,
    /// and 0.0.0.0 as the pod's IP (a pod's only interface besides loopback).
    /// </summary>
    private static Dictionary<string, string> Environment(V1Container container, V1Deployment deployment, string podName, string ip,
        Dictionary<(string, string), string> secrets, Dictionary<string, string> mounts)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var variable in container.Env ?? [])
        {
            string? value;
            if (variable.ValueFrom?.FieldRef is { } field)
            {
                value = field.FieldPath switch
                {
                    "metadata.name" => podName,
                    "metadata.namespace" => deployment.Metadata.NamespaceProperty ?? "default",
                    "status.podIP" => ip,
                    var path when path.StartsWith("metadata.labels['", StringComparison.Ordinal) => deployment.Spec.Template.Metadata.Labels[path["metadata.labels['".Length..^2]],
                    var path => throw new InvalidOperationException($"{variable.Name}: the rehearsal does not know the field {path}"),
                };
            }
            else if (variable.ValueFrom?.SecretKeyRef is { } secret)
            {
                if (!secrets.TryGetValue((secret.Name, secret.Key), out value))
                {
                    if (secret.Optional == true) continue;
                    throw new InvalidOperationException($"{variable.Name}: the Secret {secret.Name}/{secret.Key} has no stand-in here (the rehearsal provides the database only)");
                }
            }
            else if (variable.ValueFrom is not null)
            {
                throw new InvalidOperationException($"{variable.Name}: the rehearsal does not know this kind of valueFrom");
            }
            else
            {
                value = System.Text.RegularExpressions.Regex.Replace(variable.Value ?? "", @"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", m => environment.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);
            }

            value = value.Replace("0.0.0.0", ip, StringComparison.Ordinal);
            if (mounts.Where(m => value.StartsWith(m.Key + "/", StringComparison.Ordinal)).OrderByDescending(m => m.Key.Length).FirstOrDefault() is { Key: not null } under)
                value = under.Value + value[under.Key.Length..];
            environment[variable.Name] = value;
        }

        // envFrom: optional Secrets only (the API keys); an open gateway here.
        foreach (var from in container.EnvFrom ?? [])
            if (from.SecretRef is { Optional: not true } required) throw new InvalidOperationException($"envFrom: the Secret {required.Name} has no stand-in here");
        return environment;
    }

    /// <summary>A pod: the silo process, and a prober polling its probes as the kubelet does.</summary>
    private sealed class Pod(string name, string ip, V1Container container, ChildProcess process)
    {
        private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(3) };
        private readonly CancellationTokenSource _stop = new();
        private readonly CancellationTokenSource _terminating = new();
        private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Stopwatch _sinceStart = new();
        private Stopwatch? _sinceTerm;

        public string Name => name;

        public string Ip => ip;

        /// <summary>In the Service's endpoints: readiness passed, not terminating.</summary>
        public bool Ready { get; private set; }

        public TimeSpan ReadyAfter { get; private set; }

        public TimeSpan? UnreadyAfterTerm { get; private set; }

        public int LivenessFailures { get; private set; }

        /// <summary>Times readiness failed while the pod was not terminating.</summary>
        public int ReadinessLosses { get; private set; }

        public int ExitCode => process.ExitCode;

        public DateTime ReadyAtUtc { get; private set; }

        public void Start()
        {
            _sinceStart.Start();
            process.Start();
            _ = Task.Run(ProbeLoopAsync);
        }

        public async Task WaitReadyAsync(TimeSpan timeout)
        {
            try
            {
                await _ready.Task.WaitAsync(timeout);
            }
            catch (TimeoutException)
            {
                throw new InvalidOperationException($"pod {name} did not become ready within {timeout.TotalSeconds:0} s:\n{process.Output}");
            }
        }

        private Task<bool> ProbeAsync(V1Probe probe) => ProbeOnceAsync(probe, _stop.Token);

        private async Task<bool> ProbeOnceAsync(V1Probe probe, CancellationToken cancellation)
        {
            var port = Port(container, probe.HttpGet.Port.Value);
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                timeout.CancelAfter(TimeSpan.FromSeconds(probe.TimeoutSeconds ?? 1));
                using var response = await Http.GetAsync($"http://{ip}:{port}{probe.HttpGet.Path}", timeout.Token);
                return (int)response.StatusCode is >= 200 and < 400;
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
            {
                return false;
            }
        }

        /// <summary>Startup probe until it passes (or fails for good), then readiness and liveness at their periods.</summary>
        private async Task ProbeLoopAsync()
        {
            var startup = container.StartupProbe;
            var failures = 0;
            while (!await ProbeAsync(startup))
            {
                if (_stop.IsCancellationRequested || process.HasExited || ++failures >= (startup.FailureThreshold ?? 3))
                {
                    _ready.TrySetException(new InvalidOperationException($"pod {name} failed its startup probe (exited: {process.HasExited}):\n{process.Output}"));
                    return;
                }

                await Delay(startup.PeriodSeconds);
            }

            var readiness = container.ReadinessProbe;
            var liveness = container.LivenessProbe;
            var nextLive = Stopwatch.StartNew();
            var readyFailures = 0;
            var liveFailures = 0;
            var first = true;
            while (!_stop.IsCancellationRequested && !process.HasExited)
            {
                var ok = first || await ProbeAsync(readiness);
                first = false;
                if (ok)
                {
                    readyFailures = 0;
                    if (!Ready && _sinceTerm is null)
                    {
                        Ready = true;
                        if (ReadyAfter == TimeSpan.Zero)
                        {
                            ReadyAfter = _sinceStart.Elapsed;
                            ReadyAtUtc = DateTime.UtcNow;
                        }

                        _ready.TrySetResult();
                    }
                }
                else if (++readyFailures >= (readiness.FailureThreshold ?? 3) && Ready)
                {
                    Ready = false;
                    if (_sinceTerm is null) ReadinessLosses++;
                }

                if (_sinceTerm is not null && UnreadyAfterTerm is null && !ok) UnreadyAfterTerm = _sinceTerm.Elapsed;
                if (nextLive.Elapsed >= TimeSpan.FromSeconds(liveness.PeriodSeconds ?? 10))
                {
                    nextLive.Restart();
                    liveFailures = await ProbeAsync(liveness) ? 0 : liveFailures + 1;
                    if (liveFailures >= (liveness.FailureThreshold ?? 3) && _sinceTerm is null) LivenessFailures++;
                }

                // A terminating pod is watched more closely, to see when its readiness turns.
                await Delay(_sinceTerm is null ? readiness.PeriodSeconds : 0);
            }
        }

        private async Task Delay(int? seconds)
        {
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, _terminating.Token);
            try
            {
                await Task.Delay(seconds is > 0 && _sinceTerm is null ? TimeSpan.FromSeconds(seconds.Value) : TimeSpan.FromMilliseconds(200), wake.Token);
            }
            catch (OperationCanceledException)
            {
                // Stopped, or SIGTERM sent: probe now.
            }
        }

        /// <summary>As the kubelet deletes a pod: out of the endpoints at once, SIGTERM, SIGKILL after the grace period.</summary>
        public async Task<TimeSpan> TerminateAsync(TimeSpan grace)
        {
            Ready = false;
            _sinceTerm = Stopwatch.StartNew();
            process.Terminate();
            await _terminating.CancelAsync();
            if (!await process.WaitForExitAsync(grace)) process.Kill();
            var elapsed = _sinceTerm.Elapsed;
            await _stop.CancelAsync();
            return elapsed;
        }

        public void Kill()
        {
            _stop.Cancel();
            process.Kill();
        }
    }

    /// <summary>An Orleans client of the cluster that sees where grains are: how soon a new silo hosts pipeline grains.</summary>
    private sealed class Observer(IHost host) : IAsyncDisposable
    {
        public static async Task<Observer> ConnectAsync(string database, IDictionary<string, string> labels)
        {
            var cluster = new PipelineClusterOptions
            {
                Mode = PipelineMode.PostgreSql,
                ConnectionString = database,
                ServiceId = labels["orleans/serviceId"],
                ClusterId = labels["orleans/clusterId"],
            };
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.UseOrleansClient(client => client.UsePipelineCluster(cluster));
            var host = builder.Build();
            await host.StartAsync();
            return new Observer(host);
        }

        /// <summary>
        /// Seconds from the pod's readiness until it hosts a pipeline grain (key or partition); null when it did not
        /// within the timeout or left first. Orleans does not move live activations to a new silo: it gets the grains
        /// placed after it joined (new or reactivated keys, and the grains of silos that leave).
        /// </summary>
        public async Task<double?> WatchLoadAsync(Pod pod, TimeSpan timeout, Action<string> say)
        {
            var management = host.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < timeout)
            {
                try
                {
                    var silos = await management.GetHosts(onlyActive: true);
                    var address = silos.Keys.FirstOrDefault(s => s.Endpoint.Address.ToString() == pod.Ip);
                    if (address is null && clock.Elapsed > TimeSpan.FromSeconds(10)) return null; // gone
                    if (address is not null)
                    {
                        var statistics = await management.GetSimpleGrainStatistics([address]);
                        if (statistics.Any(s => s.ActivationCount > 0 && (s.GrainType.Contains("KeyWindowGrain", StringComparison.Ordinal) || s.GrainType.Contains("PartitionGrain", StringComparison.Ordinal))))
                        {
                            var seconds = (DateTime.UtcNow - pod.ReadyAtUtc).TotalSeconds;
                            say($"pod {pod.Name} hosts pipeline grains {seconds:F1} s after it was ready");
                            return seconds;
                        }
                    }
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // The cluster is changing: ask again.
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250));
            }

            return null;
        }

        public async ValueTask DisposeAsync()
        {
            await host.StopAsync();
            host.Dispose();
        }
    }

    /// <summary>The gateway Service: each new connection goes to one of the ready pods, as kube-proxy sends it.</summary>
    private sealed class ServiceProxy : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Func<List<IPEndPoint>> _endpoints;

        public ServiceProxy(Func<List<IPEndPoint>> endpoints)
        {
            _endpoints = endpoints;
            _listener.Start();
            _ = Task.Run(AcceptAsync);
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try
                {
                    client = await _listener.AcceptTcpClientAsync(_stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }

                _ = Task.Run(() => ForwardAsync(client));
            }
        }

        private async Task ForwardAsync(TcpClient client)
        {
            using (client)
            {
                var endpoints = _endpoints();
                if (endpoints.Count == 0) return; // no endpoints: the connection is refused
                using var upstream = new TcpClient();
                try
                {
                    await upstream.ConnectAsync(endpoints[Random.Shared.Next(endpoints.Count)], _stop.Token);
                    var a = client.GetStream().CopyToAsync(upstream.GetStream(), _stop.Token);
                    var b = upstream.GetStream().CopyToAsync(client.GetStream(), _stop.Token);
                    await Task.WhenAny(a, b);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
                {
                    // A pod went away: the client reconnects, to another one.
                }
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
        }
    }
}
