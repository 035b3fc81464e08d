using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Gateway;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.Tests.PostgreSql;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>
/// The gateway over an in-process embedded cluster: on an in-memory test server, or on a real loopback port.
/// </summary>
public sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private readonly IAsyncDisposable? _owned;

    private GatewayHost(IAsyncDisposable? owned, WebApplication app, GrpcChannel channel, Uri? address)
    {
        _owned = owned;
        _app = app;
        Channel = channel;
        Address = address;
    }

    public GrpcChannel Channel { get; }

    /// <summary>The gateway's own pipeline client (the cluster side of the gateway).</summary>
    public PipelineClient Pipeline => _app.Services.GetRequiredService<PipelineClient>();

    /// <summary>The loopback address, when on a real port.</summary>
    public Uri? Address { get; }

    /// <summary>An HTTP client for the JSON routes (test server only).</summary>
    public HttpClient Json() => _app.GetTestServer().CreateClient();

    public static async Task<GatewayHost> StartAsync(GatewayOptions? options = null, bool realPort = false, X509Certificate2? certificate = null, Action<PipelineSiloOptions>? silo = null)
    {
        var cluster = await PipelineCluster.StartAsync(configure: silo);
        return await StartAsync(cluster.Client, new PipelineClusterOptions(), cluster, options, realPort, certificate);
    }

    /// <summary>The gateway over a cluster the caller started (and disposes, unless it hands it over as <paramref name="owned"/>).</summary>
    public static async Task<GatewayHost> StartAsync(IClusterClient clusterClient, PipelineClusterOptions clusterOptions, IAsyncDisposable? owned, GatewayOptions? options = null, bool realPort = false, X509Certificate2? certificate = null)
    {
        options ??= new GatewayOptions();
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(clusterClient);
        if (clusterOptions.Mode == PipelineMode.PostgreSql) builder.Services.AddPostgresGatewayStores(clusterOptions.ConnectionString!, options.RequestIdRetention);
        builder.Services.AddPipelineGateway(options);
        Uri? address = null;
        if (realPort)
        {
            var port = FreePorts.Next();
            options.Url = $"{(certificate is null ? "http" : "https")}://127.0.0.1:{port}";
            if (certificate is not null)
            {
                var path = Path.Combine(Directory.CreateTempSubdirectory("orleans-pipeline-tls-").FullName, "gateway.pfx");
                File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, "test"));
                options.Certificate = new CertificateSettings { Path = path, Password = "test" };
            }

            builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenGateway(options));
            address = new Uri(options.Url);
        }
        else
        {
            builder.WebHost.UseTestServer();
        }

        var app = builder.Build();
        app.MapPipelineGateway();
        await app.StartAsync();
        var channel = realPort
            ? GrpcChannel.ForAddress(address!, new GrpcChannelOptions
            {
                HttpHandler = certificate is null ? null : new SocketsHttpHandler
                {
                    // Trust exactly the test's own certificate.
                    SslOptions = { RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == certificate.GetCertHashString() },
                },
            })
            : GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = app.GetTestServer().CreateHandler() });
        return new GatewayHost(owned, app, channel, address);
    }

    public PipelineGatewayClient NewClient(PipelineGatewayClientOptions? options = null) => new(Channel, options);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (_owned is not null) await _owned.DisposeAsync();
    }
}
