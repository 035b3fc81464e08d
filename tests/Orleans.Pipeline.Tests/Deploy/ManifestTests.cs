using System.Reflection;
using System.Text.RegularExpressions;
using k8s.Models;
using Microsoft.Extensions.Configuration;
using Orleans.Hosting.Kubernetes;
using Orleans.Pipeline.Gateway;
using Orleans.Pipeline.Hosting;
using static Orleans.Pipeline.Tests.Deploy.Manifests;

namespace Orleans.Pipeline.Tests.Deploy;

/// <summary>
/// Every overlay of <c>deploy/k8s</c>, rendered with <c>kubectl kustomize</c>, against the silo: selectors match the
/// pods, the environment holds what the silo reads and nothing it does not, probes reach the health endpoints, the
/// gateway Service reaches the gateway, the Job runs a silo command, resources are set and no secret is in the text.
/// </summary>
public sealed partial class ManifestTests
{
    public static TheoryData<string> AllOverlays() => new(Overlays);

    /// <summary>
    /// The configuration keys the silo reads (as environment variables spell them, <c>:</c> as <c>__</c>), each with
    /// where it is read. Options classes are walked by reflection, so a new setting there is known here at once.
    /// </summary>
    private static readonly Lazy<List<(string Key, string ReadBy)>> SiloKeys = new(() =>
    {
        var keys = new List<(string, string)>();
        Walk(typeof(PipelineClusterOptions), PipelineClusterOptions.Section, "PipelineClusterOptions (PipelineClientConnection.ReadClusterOptions)", keys);
        Walk(typeof(GatewayOptions), GatewayOptions.Section, "GatewayOptions (GatewayHostingExtensions.ReadGatewayOptions)", keys);
        keys.Add(("Pipeline:Pipelines:*", "PipelineConfiguration.Read"));
        keys.Add(("ConnectionStrings:Pipeline", "PipelineClientConnection.ReadClusterOptions"));
        foreach (var key in new[] { "SiloPort", "GatewayPort", "AdvertisedAddress", "MigrateOnStart", "RecentResults", "DatabasePath", "Kubernetes:Enabled" })
            keys.Add(($"Pipeline:{key}", "silo/Program.cs"));
        keys.Add(("Pipeline:SettingsFile", "silo/Program.cs (the environment only)"));
        foreach (var key in new[] { "Enabled", "Url", "DatabaseTimeout", "DrainDelay" }) keys.Add(($"Pipeline:Health:{key}", "silo/Health.cs, HealthOptions.Read"));
        keys.Add(("Orleans:Membership:*", "silo/Program.cs (ClusterMembershipOptions)"));
        keys.Add(("Logging:*", "the host's logging"));
        foreach (var field in typeof(KubernetesHostingOptions).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.Name.EndsWith("EnvironmentVariable", StringComparison.Ordinal)))
            keys.Add(((string)field.GetValue(null)!, "Kubernetes hosting (KubernetesHostingOptions)"));
        return keys.Select(k => (k.Item1.Replace(":", "__", StringComparison.Ordinal), k.Item2)).ToList();
    });

    private static void Walk(Type type, string prefix, string readBy, List<(string, string)> keys)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            var key = $"{prefix}:{property.Name}";
            var t = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(TimeSpan) || t == typeof(decimal)) keys.Add((key, readBy));
            else if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Dictionary<,>)) keys.Add((key + ":*", readBy));
            else Walk(t, key, readBy, keys);
        }
    }

    private static string? ReadBy(string name) =>
        SiloKeys.Value.FirstOrDefault(k => k.Key.EndsWith('*') ? name.StartsWith(k.Key[..^1], StringComparison.OrdinalIgnoreCase) : string.Equals(k.Key, name, StringComparison.OrdinalIgnoreCase)).ReadBy;

    /// <summary>What a silo in Kubernetes cannot do without.</summary>
    private static readonly string[] RequiredBySilo =
    [
        "Pipeline__Mode", "Pipeline__ConnectionString", "Pipeline__ServiceId", "Pipeline__ClusterId", "Pipeline__AdvertisedAddress",
        "Pipeline__SiloPort", "Pipeline__GatewayPort", "Pipeline__Gateway__Url", "Pipeline__Health__Url", "Pipeline__MigrateOnStart",
        "Pipeline__SettingsFile", "Pipeline__Kubernetes__Enabled",
        KubernetesHostingOptions.PodNameEnvironmentVariable, KubernetesHostingOptions.PodNamespaceEnvironmentVariable, KubernetesHostingOptions.PodIPEnvironmentVariable,
        KubernetesHostingOptions.ServiceIdEnvironmentVariable, KubernetesHostingOptions.ClusterIdEnvironmentVariable,
    ];

    [Theory]
    [MemberData(nameof(AllOverlays))]
    public async Task Selectors_of_the_deployment_service_budget_policy_and_autoscaler_match_the_silo_pods(string overlay)
    {
        var objects = await LoadAsync(overlay);
        var silo = Silo(objects);
        var labels = silo.Spec.Template.Metadata.Labels;
        static void Within(IDictionary<string, string> selector, IDictionary<string, string> labels, string what)
        {
            Assert.True(selector.Count > 0, $"{what} selects nothing");
            foreach (var (key, value) in selector)
                Assert.True(labels.TryGetValue(key, out var label) && label == value, $"{what} selects {key}={value}, which the silo pods do not carry");
        }

        Within(silo.Spec.Selector.MatchLabels, labels, "the Deployment");
        Within(objects.OfType<V1Service>().Single(s => s.Metadata.Name == "orleans-pipeline-gateway").Spec.Selector, labels, "the gateway Service");
        Within(objects.OfType<V1PodDisruptionBudget>().Single().Spec.Selector.MatchLabels, labels, "the PodDisruptionBudget");
        var policy = objects.OfType<V1NetworkPolicy>().Single();
        Within(policy.Spec.PodSelector.MatchLabels, labels, "the NetworkPolicy");
        Within(policy.Spec.Ingress[0].FromProperty[0].PodSelector.MatchLabels, labels, "the NetworkPolicy's silo-to-silo rule");
        var autoscaler = objects.OfType<V2HorizontalPodAutoscaler>().Single();
        Assert.Equal(("Deployment", silo.Metadata.Name), (autoscaler.Spec.ScaleTargetRef.Kind, autoscaler.Spec.ScaleTargetRef.Name));
        Assert.True(autoscaler.Spec.MinReplicas >= 2, "fewer than two silos cannot hand grains off during a rolling restart");
        // Kubernetes hosting: the pods carry the labels its ids come from, and the silo's ids are those labels.
        Assert.Contains(KubernetesHostingOptions.ServiceIdLabel, labels.Keys);
        Assert.Contains(KubernetesHostingOptions.ClusterIdLabel, labels.Keys);
        var container = Container(silo);
        Assert.Equal($"metadata.labels['{KubernetesHostingOptions.ServiceIdLabel}']", container.Env.Single(e => e.Name == KubernetesHostingOptions.ServiceIdEnvironmentVariable).ValueFrom.FieldRef.FieldPath);
        Assert.Equal($"metadata.labels['{KubernetesHostingOptions.ClusterIdLabel}']", container.Env.Single(e => e.Name == KubernetesHostingOptions.ClusterIdEnvironmentVariable).ValueFrom.FieldRef.FieldPath);
        Assert.Equal($"$({KubernetesHostingOptions.PodIPEnvironmentVariable})", Env(container, "Pipeline__AdvertisedAddress"));
        // The RBAC Kubernetes hosting needs, bound to the account the silos run as.
        var role = objects.OfType<V1Role>().Single();
        Assert.Contains(role.Rules, r => r.Resources.Contains("pods") && new[] { "get", "list", "watch", "delete" }.All(r.Verbs.Contains));
        var binding = objects.OfType<V1RoleBinding>().Single();
        Assert.Equal(role.Metadata.Name, binding.RoleRef.Name);
        Assert.Contains(binding.Subjects, s => s.Kind == "ServiceAccount" && s.Name == silo.Spec.Template.Spec.ServiceAccountName);
        Assert.Contains(objects.OfType<V1ServiceAccount>(), a => a.Metadata.Name == silo.Spec.Template.Spec.ServiceAccountName);
    }

    [Theory]
    [MemberData(nameof(AllOverlays))]
    public async Task Every_variable_the_silo_needs_is_set_and_every_variable_set_is_one_the_silo_reads(string overlay)
    {
        var objects = await LoadAsync(overlay);
        var containers = objects.OfType<V1Deployment>().SelectMany(d => d.Spec.Template.Spec.Containers)
            .Concat(objects.OfType<V1Job>().SelectMany(j => j.Spec.Template.Spec.Containers)).ToList();
        Assert.NotEmpty(containers);
        foreach (var container in containers)
        {
            var names = container.Env.Select(e => e.Name).ToList();
            Assert.Equal(names.Count, names.Distinct().Count());
            for (var i = 0; i < container.Env.Count; i++)
            {
                var variable = container.Env[i];
                // Set for the silo, or for another variable that refers to it (which the kubelet expands only when defined before).
                var referencedBy = container.Env.Skip(i + 1).Where(e => e.Value?.Contains($"$({variable.Name})", StringComparison.Ordinal) == true).ToList();
                Assert.True(ReadBy(variable.Name) is not null || referencedBy.Count > 0, $"{overlay}: container {container.Name} sets {variable.Name}, which the silo does not read");
                foreach (Match reference in Reference().Matches(variable.Value ?? ""))
                    Assert.True(names.IndexOf(reference.Groups[1].Value) is >= 0 and var at && at < i, $"{overlay}: {variable.Name} refers to $({reference.Groups[1].Value}), not defined before it");
            }
        }

        var silo = Container(Silo(objects));
        foreach (var name in RequiredBySilo) Assert.True(silo.Env.Any(e => e.Name == name), $"{overlay}: the silo container does not set {name}");
        Assert.Equal("PostgreSql", Env(silo, "Pipeline__Mode"));
        var migrate = objects.OfType<V1Job>().Single().Spec.Template.Spec.Containers.Single();
        foreach (var name in new[] { "Pipeline__Mode", "Pipeline__ConnectionString" }) Assert.Contains(migrate.Env, e => e.Name == name);

        // The pipelines ConfigMap is what the silo reads from Pipeline__SettingsFile: valid pipelines.
        var settings = Env(silo, "Pipeline__SettingsFile");
        var mount = silo.VolumeMounts.Single(m => settings.StartsWith(m.MountPath + "/", StringComparison.Ordinal));
        var volume = Silo(objects).Spec.Template.Spec.Volumes.Single(v => v.Name == mount.Name);
        var map = objects.OfType<V1ConfigMap>().Single(c => c.Metadata.Name == volume.ConfigMap.Name);
        var json = map.Data[Path.GetFileName(settings)];
        var configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json))).Build();
        Assert.NotEmpty(PipelineConfiguration.Read(configuration));
    }

    [Theory]
    [MemberData(nameof(AllOverlays))]
    public async Task Probes_reach_the_health_endpoints_and_ports_are_the_ones_the_silo_listens_on(string overlay)
    {
        var deployment = Silo(await LoadAsync(overlay));
        var silo = Container(deployment);
        var health = PortOfUrl(Env(silo, "Pipeline__Health__Url"));
        Assert.Equal(HealthEndpointTests.ReadyPath, silo.StartupProbe.HttpGet.Path);
        Assert.Equal(HealthEndpointTests.ReadyPath, silo.ReadinessProbe.HttpGet.Path);
        Assert.Equal(HealthEndpointTests.LivePath, silo.LivenessProbe.HttpGet.Path);
        foreach (var probe in new[] { silo.StartupProbe, silo.ReadinessProbe, silo.LivenessProbe })
            Assert.Equal(health, ContainerPort(silo, probe.HttpGet.Port.Value));
        Assert.Equal(int.Parse(Env(silo, "Pipeline__SiloPort"), System.Globalization.CultureInfo.InvariantCulture), ContainerPort(silo, "silo"));
        Assert.Equal(int.Parse(Env(silo, "Pipeline__GatewayPort"), System.Globalization.CultureInfo.InvariantCulture), ContainerPort(silo, "orleans-gateway"));
        Assert.Equal(PortOfUrl(Env(silo, "Pipeline__Gateway__Url")), ContainerPort(silo, "grpc"));
        Assert.Equal(4, silo.Ports.Count);

        // Rolling upgrades lose no capacity, and a stopping silo has time to drain and hand its grains off.
        Assert.Equal("0", deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);
        var drain = TimeSpan.Parse(Env(silo, "Pipeline__Health__DrainDelay"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(deployment.Spec.Template.Spec.TerminationGracePeriodSeconds >= drain.TotalSeconds + 30, "the grace period must cover the drain delay and the host's 30 s to stop the silo");
        Assert.True(silo.SecurityContext.ReadOnlyRootFilesystem);
        Assert.True(deployment.Spec.Template.Spec.SecurityContext.RunAsNonRoot);
        Assert.Contains(silo.VolumeMounts, m => m.MountPath == "/tmp");
    }

    [Theory]
    [MemberData(nameof(AllOverlays))]
    public async Task The_gateway_service_targets_the_gateway_port_and_the_job_runs_a_silo_command(string overlay)
    {
        var objects = await LoadAsync(overlay);
        var silo = Container(Silo(objects));
        var service = objects.OfType<V1Service>().Single(s => s.Metadata.Name == "orleans-pipeline-gateway");
        var port = Assert.Single(service.Spec.Ports);
        Assert.Equal(PortOfUrl(Env(silo, "Pipeline__Gateway__Url")), ContainerPort(silo, port.TargetPort.Value));
        // Clear-text HTTP/2 is announced as such; a TLS gateway is not.
        if (Env(silo, "Pipeline__Gateway__Url").StartsWith("https:", StringComparison.Ordinal)) Assert.NotEqual("kubernetes.io/h2c", port.AppProtocol);
        else Assert.Equal("kubernetes.io/h2c", port.AppProtocol);

        var commands = await SiloCommandsAsync();
        var migrate = objects.OfType<V1Job>().Single().Spec.Template.Spec.Containers.Single();
        Assert.Equal(["migrate"], migrate.Args);
        Assert.Null(migrate.Command); // the image's entrypoint, the silo
        Assert.Contains("migrate", commands);
        Assert.Contains(Assert.Single(silo.Args), commands);
    }

    [Theory]
    [MemberData(nameof(AllOverlays))]
    public async Task Every_container_has_requests_and_limits_and_no_secret_value_is_in_a_manifest(string overlay)
    {
        var text = await RenderAsync(overlay);
        var objects = await LoadAsync(overlay);
        var specs = objects.OfType<V1Deployment>().Select(d => d.Spec.Template.Spec).Concat(objects.OfType<V1Job>().Select(j => j.Spec.Template.Spec)).ToList();
        foreach (var container in specs.SelectMany(s => s.Containers.Concat(s.InitContainers ?? [])))
        {
            foreach (var resource in new[] { "cpu", "memory" })
            {
                Assert.True(container.Resources?.Requests?.ContainsKey(resource) == true, $"{overlay}: {container.Name} has no {resource} request");
                Assert.True(container.Resources?.Limits?.ContainsKey(resource) == true, $"{overlay}: {container.Name} has no {resource} limit");
            }

            foreach (var variable in container.Env)
            {
                if (SecretName().IsMatch(variable.Name))
                    Assert.True(variable.ValueFrom?.SecretKeyRef is not null, $"{overlay}: {variable.Name} must come from a Secret (secretKeyRef), not a value");
            }
        }

        Assert.DoesNotContain(objects, o => o is V1Secret);
        Assert.DoesNotContain(objects.OfType<V1Deployment>().SelectMany(d => d.Spec.Template.Spec.Volumes), v => v.HostPath is not null);
        foreach (var secretLike in new[] { "Password=", "password:", "sha256:", "BEGIN CERTIFICATE", "BEGIN PRIVATE KEY", "opk_" })
            Assert.DoesNotContain(secretLike, text, StringComparison.OrdinalIgnoreCase);
    }

    [GeneratedRegex(@"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex Reference();

    [GeneratedRegex("ConnectionString|Password|ApiKeys", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();
}
