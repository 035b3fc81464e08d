using System.Globalization;
using Orleans.Pipeline.Tests.PostgreSql;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Observability;

/// <summary>An embedded-mode silo process with the <c>demo</c> pipeline of its appsettings, on free ports and a database of its own.</summary>
internal static class EmbeddedSiloProcess
{
    /// <summary>Starts it with the gateway at <paramref name="gatewayUrl"/> and these settings besides; returns once it has started.</summary>
    public static async Task<SiloProcess> StartAsync(string gatewayUrl, IReadOnlyDictionary<string, string>? settings = null)
    {
        var environment = new Dictionary<string, string>(settings ?? new Dictionary<string, string>())
        {
            ["Pipeline__Gateway__Url"] = gatewayUrl,
            ["Pipeline__SiloPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(CultureInfo.InvariantCulture),
            ["Pipeline__DatabasePath"] = Path.Combine(Path.GetTempPath(), "orleans-pipeline-tests", Guid.NewGuid().ToString("N"), "pipeline.db"),
            ["Logging__LogLevel__Default"] = "Error",
        };
        var silo = SiloProcess.Start(environment);
        await silo.WaitForOutputAsync("silo started", TimeSpan.FromSeconds(90));
        return silo;
    }
}
