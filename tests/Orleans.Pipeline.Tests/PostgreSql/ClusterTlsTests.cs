using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Pipeline.Client;
using static Orleans.Pipeline.Tests.Workload;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// The cluster's own ports with mutual TLS: a silo process and a client whose certificates chain to the cluster's CA
/// work together; a client presenting a certificate from elsewhere is refused.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterTlsTests(PostgresServer postgres)
{
    [Fact]
    public async Task A_client_with_a_certificate_of_the_clusters_ca_publishes_and_one_with_another_certificate_is_refused()
    {
        var directory = Directory.CreateTempSubdirectory("orleans-pipeline-tls-").FullName;
        using var ca = CreateCa("CN=orleans-pipeline test CA");
        var caPath = Path.Combine(directory, "ca.crt");
        await File.WriteAllBytesAsync(caPath, ca.Export(X509ContentType.Cert));
        var siloPath = WritePfx(directory, "silo", Leaf(ca, "CN=silo"));
        var clientPath = WritePfx(directory, "client", Leaf(ca, "CN=client"));
        using var rogueCa = CreateCa("CN=someone else");
        var roguePath = WritePfx(directory, "rogue", Leaf(rogueCa, "CN=client"));

        var database = await postgres.NewMigratedDatabaseAsync();
        var clusterId = $"tls-{Guid.NewGuid():N}";
        var environment = new Dictionary<string, string>
        {
            ["Pipeline__Mode"] = "PostgreSql",
            ["Pipeline__ConnectionString"] = database,
            ["Pipeline__ClusterId"] = clusterId,
            ["Pipeline__ServiceId"] = "pipeline-tls-tests",
            ["Pipeline__StreamQueues"] = "4",
            ["Pipeline__SiloPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Pipeline__GatewayPort"] = FreePorts.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Pipeline__Gateway__Url"] = $"http://127.0.0.1:{FreePorts.Next()}",
            ["Pipeline__Tls__CertificatePath"] = siloPath,
            ["Pipeline__Tls__CertificatePassword"] = "test",
            ["Pipeline__Tls__CaCertificatePath"] = caPath,
            ["Logging__LogLevel__Default"] = "Error",
        };
        await using var silo = SiloProcess.Start(environment.Concat(SiloProcess.PipelineEnvironment(PipelineCluster.Pipelines)).ToDictionary());
        await silo.WaitForOutputAsync("silo started", TimeSpan.FromSeconds(60));

        PipelineClusterOptions Options(string certificate) => new()
        {
            Mode = PipelineMode.PostgreSql,
            ConnectionString = database,
            ClusterId = clusterId,
            ServiceId = "pipeline-tls-tests",
            StreamQueues = 4,
            Tls = new ClusterTlsOptions { CertificatePath = certificate, CertificatePassword = "test", CaCertificatePath = caPath },
        };

        using (var trusted = await StartClientAsync(Options(clientPath), TimeSpan.FromSeconds(60)))
        {
            await using var client = new PipelineClient(trusted.Services.GetRequiredService<IClusterClient>());
            await client.PublishAsync("tumbling", new PipelineEvent("tls", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 }));
            await client.WaitUntilAppliedAsync();
            Assert.Equal(1, (await client.QueryAsync("tumbling", "tls")).AppliedEvents);
        }

        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var rogue = await StartClientAsync(Options(roguePath), TimeSpan.FromSeconds(20));
            await rogue.Services.GetRequiredService<IClusterClient>().GetGrain<IPipelineCatalogGrain>(0).GetPipelinesAsync();
        });
    }

    private static async Task<IHost> StartClientAsync(PipelineClusterOptions options, TimeSpan timeout)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleansClient(client => client.UsePipelineCluster(options));
        var host = builder.Build();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await host.StartAsync(cancel.Token);
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    private static X509Certificate2 CreateCa(string subject)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static X509Certificate2 Leaf(X509Certificate2 ca, string subject)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var certificate = request.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(10), RandomNumberGenerator.GetBytes(8));
        return certificate.CopyWithPrivateKey(key);
    }

    private static string WritePfx(string directory, string name, X509Certificate2 certificate)
    {
        var path = Path.Combine(directory, $"{name}.pfx");
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, "test"));
        certificate.Dispose();
        return path;
    }
}
