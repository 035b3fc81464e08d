using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Gateway;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>
/// The gateway over an in-process embedded cluster: on an in-memory test server, or on a real loopback port.
/// </summary>
public sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GatewayHost(PipelineCluster cluster, WebApplication app, GrpcChannel channel, Uri? address)
    {
        Cluster = cluster;
        _app = app;
        Channel = channel;
        Address = address;
    }

    public PipelineCluster Cluster { get; }

    public GrpcChannel Channel { get; }

    /// <summary>The loopback address, when on a real port.</summary>
    public Uri? Address { get; }

    /// <summary>An HTTP client for the JSON routes (test server only).</summary>
    public HttpClient Json() => _app.GetTestServer().CreateClient();

    public static async Task<GatewayHost> StartAsync(GatewayOptions? options = null, bool realPort = false)
    {
        options ??= new GatewayOptions();
        var cluster = await PipelineCluster.StartAsync();
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IClusterClient>(cluster.Client);
        builder.Services.AddPipelineGateway(options, new PipelineClusterOptions());
        Uri? address = null;
        if (realPort)
        {
            var port = SiloProcess.FreePort();
            options.Url = $"http://127.0.0.1:{port}";
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
            ? GrpcChannel.ForAddress(address!)
            : GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = app.GetTestServer().CreateHandler() });
        return new GatewayHost(cluster, app, channel, address);
    }

    public PipelineGatewayClient NewClient(PipelineGatewayClientOptions? options = null) => new(Channel, options);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        await Cluster.DisposeAsync();
    }
}
