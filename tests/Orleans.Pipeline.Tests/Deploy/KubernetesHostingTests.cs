using System.Globalization;
using Orleans.Pipeline.Tests.PostgreSql;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Deploy;

/// <summary>
/// <c>Pipeline:Kubernetes:Enabled</c> turns Orleans' Kubernetes hosting on (the manifests set it). There is no API
/// server here, so what can be checked is that the switch reaches it: outside a cluster the silo refuses to start
/// with the hosting's own explanation and exit code 3, instead of running without it.
/// </summary>
public sealed class KubernetesHostingTests
{
    [Fact]
    public async Task With_kubernetes_hosting_on_outside_a_cluster_the_silo_says_so_and_exits_with_code_3()
    {
        await using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["Pipeline__Kubernetes__Enabled"] = "true",
            ["POD_NAME"] = "orleans-pipeline-silo-0",
            ["POD_NAMESPACE"] = "orleans-pipeline",
            ["POD_IP"] = "127.0.0.1",
            ["ORLEANS_SERVICE_ID"] = "orleans-pipeline",
            ["ORLEANS_CLUSTER_ID"] = "orleans-pipeline",
            ["Pipeline__SiloPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{FreePorts.Next()}",
            ["KUBERNETES_SERVICE_HOST"] = "",
            ["KUBERNETES_SERVICE_PORT"] = "",
        });

        Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"the silo is still running:\n{silo.Output}");
        Assert.Equal(3, silo.ExitCode);
        Assert.Contains(silo.Errors, l => l.StartsWith("error: the silo could not start", StringComparison.Ordinal) && l.Contains("in-cluster configuration", StringComparison.Ordinal));
    }
}
